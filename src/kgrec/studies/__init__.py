"""Studies behind `kgrec reproduce`: several runs per table (kgrec.studies.ktup: KTUP Tables 2-4)."""
