"""Stage report (rules/report.smk): statistics of the comparisons and every figure."""
