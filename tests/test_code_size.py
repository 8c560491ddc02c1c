"""The library stays readable in an afternoon: no function (or method) in ``elrt_core`` spans more than
60 lines, its signature, docstring and nested functions included."""

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1] / "elrt_core"
MAX_LINES = 60


def _function_spans(path: Path) -> list[tuple[str, int, int]]:
    """``(qualified name, first line, lines spanned)`` of every function defined in the file at ``path``."""
    spans = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    spans.append((name, child.lineno, child.end_lineno - child.lineno + 1))
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(), filename=str(path)), "")
    return spans


def test_the_span_counts_every_line_of_a_function(tmp_path):
    source = tmp_path / "example.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    source.write_text(f"class A:\n    def short(self):\n        return 1\n\n\ndef long():\n{body}\n    return x0\n")
    assert _function_spans(source) == [("A.short", 2, 2), ("long", 6, MAX_LINES + 2)]


def test_no_function_in_the_library_is_over_60_lines():
    files = sorted(LIBRARY.rglob("*.py"))
    assert len(files) > 50  # the whole library is read
    long = [
        f"{path.relative_to(LIBRARY.parent)}:{line} {name} ({lines} lines)"
        for path in files
        for name, line, lines in _function_spans(path)
        if lines > MAX_LINES
    ]
    assert not long, "functions over 60 lines (split them into named steps):\n" + "\n".join(long)
