"""Stage report (rules/report.smk): statistics of the comparisons (stats), what each figure kind reads and draws
(kinds), every figure (figures), the generator report card (card) and the findings text (findings)."""
