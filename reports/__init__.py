"""Reports: MLflow results -> model selection -> paper-style ID/OOD tables and plots (see README.md here).

query.py (MLflow -> tidy frame) -> select.py (selection rules) -> aggregate.py (seeds) -> layout.py (tables)
-> paper.py (the paper's table shapes; paper_render.py) and robustness.py (effective robustness)
-> tables.py (Markdown, LaTeX, CSV), plots.py, html.py; reference.py (published numbers); api.py
(`write_report`, `build_report`); cli.py (`bench report`). Nothing heavy is imported here.
"""
