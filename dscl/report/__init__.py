"""The report: tables (:mod:`~dscl.report.tables`, the paper's own figures in
:mod:`~dscl.report.paper`), figures (:mod:`~dscl.report.plots`), retrieval galleries
(:mod:`~dscl.report.gallery`), the gathered training curves (:mod:`~dscl.report.curves`),
and the report stage's work (:mod:`~dscl.report.build`)."""
