"""The course as authors see it: rules stated in the notebooks and how the suites cover them."""
