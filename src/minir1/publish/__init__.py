"""Publishing: reads results files only (plots, verdict box, claims table, chapter
execution, ledger).  Never imports training code.
"""
