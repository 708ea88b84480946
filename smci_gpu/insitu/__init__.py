"""In-situ pipeline: quality control, gap filling and daily means, matching to ERA5-Land."""
