"""The report: tables (:mod:`~dscl.report.tables`), figures (:mod:`~dscl.report.plots`)
and the gathered training curves (:mod:`~dscl.report.curves`)."""
