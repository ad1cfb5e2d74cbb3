"""``btlake flight``: the Arrow Flight front end (contract section 9), a page of glue over
``Lake``: :mod:`.server` parses descriptors, tickets and actions, calls one ``Lake`` method or
the ``Lake``'s stream writer, and turns errors into Flight statuses."""
