"""udcshield.evaluation: BasicSR-convention metrics (PSNR, SSIM of Wang et al. 2004), result records
and their tables/plots, for the study of Song et al. (arXiv 2402.13629)."""

from udcshield.evaluation.metrics import PSNR_CAP_DB, gaussian_window, psnr, ssim, to_8bit
from udcshield.evaluation.records import (
    CLEAN_ATTACK,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    read_records_csv,
    validate_record,
    write_records_csv,
)
from udcshield.evaluation.tables import budget_label, markdown_table, psnr_vs_budget_rows, summary_table

__all__ = [
    "CLEAN_ATTACK",
    "OPTIONAL_COLUMNS",
    "PSNR_CAP_DB",
    "REQUIRED_COLUMNS",
    "budget_label",
    "gaussian_window",
    "markdown_table",
    "psnr",
    "psnr_vs_budget_rows",
    "read_records_csv",
    "ssim",
    "summary_table",
    "to_8bit",
    "validate_record",
    "write_records_csv",
]
