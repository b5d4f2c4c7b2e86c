from connectors.html_markdown import html_to_markdown, markdown_table, parse_html


def md(html: str) -> str:
    soup = parse_html(f"<html><body>{html}</body></html>")
    return html_to_markdown(soup.body)


def test_headings_paragraphs_and_inline_code() -> None:
    out = md(
        "<h1>Deploys</h1><p>Run <code>make  deploy</code> <b>twice</b>.</p><h3>Rollback</h3><p>Undo it.</p>"
    )
    assert out == "# Deploys\n\nRun `make deploy` twice.\n\n### Rollback\n\nUndo it."


def test_nested_ordered_and_bulleted_lists() -> None:
    out = md("<ol><li>Install<ul><li>macOS</li><li>Linux</li></ul></li><li>Sign in</li></ol>")
    assert out == "1. Install\n  - macOS\n  - Linux\n2. Sign in"


def test_confluence_task_list_keeps_check_state() -> None:
    out = md('<ul class="inline-task-list"><li class="checked">Ack the page</li><li>Open a channel</li></ul>')
    assert out == "- [x] Ack the page\n- [ ] Open a channel"


def test_table_becomes_pipe_table_with_escaped_pipes_and_colspan() -> None:
    out = md(
        '<div class="table-wrap"><table class="confluenceTable"><tbody>'
        "<tr><th>Command</th><th>Meaning</th></tr>"
        "<tr><td><p>a | b</p></td><td>pipe<br/>two lines</td></tr>"
        '<tr><td colspan="2">spans both</td></tr>'
        "</tbody></table></div>"
    )
    assert out.splitlines() == [
        "| Command | Meaning |",
        "| --- | --- |",
        "| a \\| b | pipe two lines |",
        "| spans both |  |",
    ]


def test_confluence_code_macro_keeps_whitespace_and_language() -> None:
    out = md(
        '<div class="code panel pdl"><div class="codeContent panelContent pdl">'
        '<pre class="syntaxhighlighter-pre" data-syntaxhighlighter-params="brush: py; gutter: false">'
        "def f():\n    return 1</pre></div></div>"
    )
    assert out == "```py\ndef f():\n    return 1\n```"


def test_code_containing_fences_gets_a_longer_fence() -> None:
    out = md("<pre>```\ninner\n```</pre>")
    assert out.startswith("````\n") and out.endswith("\n````")


def test_panels_macros_and_expand_render_as_labelled_blocks() -> None:
    out = md(
        '<div class="confluence-information-macro confluence-information-macro-warning">'
        '<span class="aui-icon confluence-information-macro-icon"></span>'
        '<div class="confluence-information-macro-body"><p>Never deploy on Friday.</p></div></div>'
        '<div class="panel"><div class="panelHeader"><b>Golden rule</b></div>'
        '<div class="panelContent"><p>Ack first.</p></div></div>'
        '<div class="expand-container"><div class="expand-control"><span class="expand-control-icon">x</span>'
        '<span class="expand-control-text">Old tool</span></div><div class="expand-content"><p>Retired.</p></div></div>'
    )
    assert (
        out == "> Warning: Never deploy on Friday.\n\n> Golden rule\n>\n> Ack first.\n\nOld tool\n\nRetired."
    )


def test_scripts_styles_and_comments_are_dropped() -> None:
    out = md("<style>p{}</style><script>alert(1)</script><!-- note --><p>Visible</p>")
    assert out == "Visible"


def test_google_docs_title_and_list_levels() -> None:
    out = md(
        '<p class="c3 title"><span>Policy</span></p>'
        '<ul class="lst-kix_abc-0 start"><li>Top</li></ul><ul class="lst-kix_abc-1"><li>Nested</li></ul>'
    )
    assert out == "# Policy\n\n- Top\n\n  - Nested"


def test_markdown_table_pads_rows_and_drops_empty_ones() -> None:
    assert markdown_table([["a", "b"], ["", ""], ["1"]]) == "| a | b |\n| --- | --- |\n| 1 |  |"


def test_source_newlines_are_spaces_and_br_is_a_line_break() -> None:
    assert md("<p>one\ntwo<br>three</p>") == "one two\nthree"
