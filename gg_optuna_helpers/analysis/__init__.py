"""What a study found: summary, diagnostics with fixes, plots, the best configuration.

    summary = summarize(study); print(format_summary(summary))
    for finding in diagnose(study): print(finding.message)
    write_report(storage, "my-study", "report/")   # all of it, into one folder
"""

from ._diagnose import Finding, diagnose
from ._export import export_best_config
from ._plots import build_figures, export_plots
from ._report import write_report
from ._summary import format_summary, summarize

__all__ = ["Finding", "build_figures", "diagnose", "export_best_config", "export_plots",
           "format_summary", "summarize", "write_report"]
