"""The ranking's parameters by default (SPEC §5), written once: the settings, the core and the batch reference read them here."""

TOP_N = 100  # how many suspects the ranking holds
WINDOW_DAYS = 365  # how far back an allegation counts
MIN_ALLEGATIONS = 2  # VAWG allegations in the window a suspect needs to be ranked
RETENTION_MARGIN_DAYS = 90  # the default retention (SPEC §9): the longest window and this much more
