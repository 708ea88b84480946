"""Readers and writers: every file format the engine meets, behind canonical names/units."""
