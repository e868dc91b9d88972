"""Output renderers: the HTML access-review report (``report``) and its view model."""
