//! Converts the Markdown sources of the library's man pages (`man/src/<page>.<section>.md`)
//! to roff for the man(7) macros, so that each page has one source (docs/packaging.md).
//!
//! Only the subset those sources use is accepted; anything else is an error naming the file
//! and line, never silently dropped:
//!
//! * a front matter block: `---`, then `title: <name>`, `section: <n>` and optionally
//!   `aliases: <name> <name.N> ...` (other functions the page covers: each gets a page that
//!   is a `.so` link to this one, in this page's section or in section N), then `---`;
//! * `# HEADING` (`.SH`) and `## Subheading` (`.SS`), plain text only;
//! * paragraphs (lines up to a blank line);
//! * fenced code blocks (three backquotes, optionally with a language), shown as they are;
//! * bullet items (`* text`, continued by lines indented two spaces);
//! * definition items: a line with the term, then a line `: definition` (continued by lines
//!   indented two spaces), as in pandoc;
//! * `<!-- comments -->` on lines of their own;
//! * a placeholder, `<!-- @NAME@ -->` on a line of its own (`NAME` in capitals): the place of
//!   a part that a generator fills (man/docgen.rs: the SYNOPSIS, OPTIONS and COMMANDS of a
//!   section 1 page, from clap); it becomes the roff comment `.\" @NAME@`;
//! * inline: `**bold**`, `*italic*`, `` `code` `` (bold), and `\` before a punctuation
//!   character for that character itself.
//!
//! This file is not a crate: `librpmem/tests/generated_docs.rs` includes it with `#[path]`
//! (sections 3, 5 and 7), and man/docgen.rs does (the prose of the section 1 pages).

use std::fmt;

/// What is wrong with a Markdown source, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdError {
    /// The source, as given to [`convert`].
    pub file: String,
    /// 1-based line of the source.
    pub line: usize,
    /// What the converter could not accept there.
    pub what: String,
}

impl fmt::Display for MdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

impl std::error::Error for MdError {}

/// A converted page: its name, section, roff text and the names that are `.so` links to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub title: String,
    pub section: String,
    /// The whole page: a comment naming the source, `.TH`, then [`Page::body`].
    pub roff: String,
    /// The page after its `.TH` line (for a generator that writes its own title).
    pub body: String,
    pub aliases: Vec<String>,
    /// The placeholders (`<!-- @NAME@ -->`) in source order, as `NAME`.
    pub placeholders: Vec<String>,
}

impl Page {
    /// The files of this page relative to the man directory: `man<s>/<title>.<s>` with the
    /// roff, and one `.so` link per alias.
    pub fn files(&self) -> Vec<(String, String)> {
        let dir = format!("man{}", self.section);
        let main = format!("{dir}/{}.{}", self.title, self.section);
        let mut files = vec![(main.clone(), self.roff.clone())];
        for alias in &self.aliases {
            // `name.N`: a page of section N (a function that a section 7 page describes).
            let file = match alias.split_once('.') {
                Some((_, section)) => format!("man{section}/{alias}"),
                None => format!("{dir}/{alias}.{}", self.section),
            };
            files.push((file, format!(".so {main}\n")));
        }
        files
    }
}

struct Converter<'a> {
    file: &'a str,
    out: String,
    /// A `.SH`/`.SS` was the last thing written: the next paragraph needs no `.PP`.
    after_heading: bool,
    placeholders: Vec<String>,
}

impl Converter<'_> {
    fn err(&self, line: usize, what: impl Into<String>) -> MdError {
        MdError {
            file: self.file.to_owned(),
            line,
            what: what.into(),
        }
    }

    /// Writes the text of one or more source lines (`(line number, text)`) as roff text
    /// lines, converting the inline markup. A span may continue on the next line.
    fn inline(&mut self, lines: &[(usize, &str)]) -> Result<(), MdError> {
        #[derive(PartialEq)]
        enum Font {
            Roman,
            Bold,
            Italic,
        }
        let mut font = Font::Roman;
        let mut opened_at = 0;
        for &(n, text) in lines {
            let mut out = String::new();
            let mut chars = text.trim().chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(p) if p.is_ascii_punctuation() => push_char(&mut out, p),
                        _ => {
                            return Err(
                                self.err(n, "a backslash must escape a punctuation character")
                            )
                        }
                    },
                    '`' => {
                        let mut code = String::new();
                        loop {
                            match chars.next() {
                                Some('`') => break,
                                Some(c) => code.push(c),
                                None => return Err(self.err(n, "a code span must end on its line")),
                            }
                        }
                        let back = if font == Font::Italic { "\\fI" } else { "\\fR" };
                        if font == Font::Bold {
                            return Err(self.err(n, "a code span inside bold text"));
                        }
                        open_span(&mut out, "\\fB");
                        for c in code.chars() {
                            push_char(&mut out, c);
                        }
                        out.push_str(back);
                    }
                    '*' if chars.peek() == Some(&'*') => {
                        chars.next();
                        font = match font {
                            Font::Roman => {
                                opened_at = n;
                                open_span(&mut out, "\\fB");
                                Font::Bold
                            }
                            Font::Bold => {
                                out.push_str("\\fR");
                                Font::Roman
                            }
                            Font::Italic => return Err(self.err(n, "bold inside italic text")),
                        };
                    }
                    '*' => {
                        font = match font {
                            Font::Roman => {
                                opened_at = n;
                                open_span(&mut out, "\\fI");
                                Font::Italic
                            }
                            Font::Italic => {
                                out.push_str("\\fR");
                                Font::Roman
                            }
                            Font::Bold => return Err(self.err(n, "italic inside bold text")),
                        };
                    }
                    '_' if chars.peek() == Some(&'_') => {
                        return Err(self.err(n, "`__` emphasis is not supported: use `**`"))
                    }
                    '[' | ']' | '<' | '>' | '|' if !is_plain_use(c, text) => {
                        return Err(self.err(
                            n,
                            format!("`{c}` (a link, HTML or a table?) must be escaped as `\\{c}`"),
                        ))
                    }
                    c => push_char(&mut out, c),
                }
            }
            if out.starts_with('.') || out.starts_with('\'') {
                self.out.push_str("\\&");
            }
            self.out.push_str(&out);
            self.out.push('\n');
        }
        if font != Font::Roman {
            return Err(self.err(opened_at, "bold or italic text is not closed in its block"));
        }
        Ok(())
    }

    fn request(&mut self, line: &str) {
        self.out.push_str(line);
        self.out.push('\n');
    }

    fn paragraph_break(&mut self) {
        if !self.after_heading {
            self.request(".PP");
        }
        self.after_heading = false;
    }
}

/// `[`, `]`, `<`, `>` and `|` are accepted as text only where Markdown cannot take them for
/// markup: `<` and `>` between spaces or digits (`a < b`), `[`/`]` with no `(` after `]`.
fn is_plain_use(c: char, line: &str) -> bool {
    match c {
        '<' | '>' => line.contains(&format!(" {c} ")),
        '[' | ']' => !line.contains("](") && !line.contains("]["),
        _ => false,
    }
}

/// Opens a bold or italic span (`font` is `\fB` or `\fI`) in a text line, and keeps groff
/// from hyphenating the word it is in: `\%` does that only at the start of a word (inside one
/// it marks a place to break), so within a word (`(**--remove**)`, `{**yes**\|**no**}`) it
/// goes to the word's start, once.
fn open_span(out: &mut String, font: &str) {
    let start = out.rfind(' ').map_or(0, |i| i + 1);
    if start == out.len() {
        out.push_str(font);
        out.push_str("\\%");
        return;
    }
    if !out[start..].starts_with("\\%") && !out[start..].starts_with("\\f") {
        out.insert_str(start, "\\%");
    }
    out.push_str(font);
}

/// Appends one character of text, escaped for roff.
fn push_char(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\e"),
        '-' => out.push_str("\\-"),
        c => out.push(c),
    }
}

/// Escapes a line of a code block: shown as it is.
fn code_line(line: &str) -> String {
    let mut out = String::new();
    if line.starts_with('.') || line.starts_with('\'') {
        out.push_str("\\&");
    }
    for c in line.chars() {
        match c {
            '\t' => out.push_str("        "),
            c => push_char(&mut out, c),
        }
    }
    out
}

/// Converts the Markdown `text` of `file` (named in errors and in the page's first comment)
/// to a man page. `source` and `manual` are the `.TH` fields.
pub fn convert(file: &str, text: &str, source: &str, manual: &str) -> Result<Page, MdError> {
    let lines: Vec<(usize, &str)> = text.lines().enumerate().map(|(i, l)| (i + 1, l)).collect();
    let mut c = Converter {
        file,
        out: String::new(),
        after_heading: false,
        placeholders: Vec::new(),
    };
    // Front matter.
    if lines.first().map(|l| l.1) != Some("---") {
        return Err(c.err(1, "the first line must be `---` (the front matter)"));
    }
    let (mut title, mut section, mut aliases) = (None, None, Vec::new());
    let mut i = 1;
    loop {
        let Some(&(n, line)) = lines.get(i) else {
            return Err(c.err(i, "the front matter does not end with `---`"));
        };
        i += 1;
        if line == "---" {
            break;
        }
        match line.split_once(": ") {
            Some(("title", v)) => title = Some(v.trim().to_owned()),
            Some(("section", v)) => section = Some(v.trim().to_owned()),
            Some(("aliases", v)) => {
                aliases = v.split_whitespace().map(str::to_owned).collect();
                let bad = aliases.iter().find(|a| {
                    let (name, section) = a.split_once('.').unwrap_or((a.as_str(), "1"));
                    name.is_empty()
                        || !name
                            .chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                        || section.len() != 1
                        || !section.chars().all(|ch| ch.is_ascii_digit())
                });
                if let Some(bad) = bad {
                    return Err(c.err(n, format!("alias `{bad}` is not `name` or `name.N`")));
                }
            }
            _ => return Err(c.err(n, format!("unknown front matter line `{line}`"))),
        }
    }
    let title = title.ok_or_else(|| c.err(1, "the front matter has no `title`"))?;
    let section = section.ok_or_else(|| c.err(1, "the front matter has no `section`"))?;
    if title.is_empty()
        || !title
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    {
        return Err(c.err(2, format!("title `{title}` is not a page name")));
    }
    if section.len() != 1 || !section.chars().all(|ch| ch.is_ascii_digit()) {
        return Err(c.err(3, format!("section `{section}` is not 1 to 9")));
    }
    c.request(&format!(
        ".\\\" Generated from {file} by man/mdroff.rs; edit that, then run\n\
         .\\\" REGENERATE_DOCS=1 cargo test -p librpmem generated_docs"
    ));
    c.request(&format!(
        ".TH {} {section} \"\" \"{source}\" \"{manual}\"",
        title.to_ascii_uppercase()
    ));
    let body_start = c.out.len();

    while let Some(&(n, line)) = lines.get(i) {
        i += 1;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(name) = placeholder(line) {
            c.request(&format!(".\\\" @{name}@"));
            c.placeholders.push(name.to_owned());
            c.after_heading = false;
            continue;
        }
        if line.trim_start().starts_with("<!-- @") {
            return Err(c.err(
                n,
                "a placeholder is `<!-- @NAME@ -->` (capitals and `_`) on a line of its own",
            ));
        }
        if let Some(rest) = line.strip_prefix("<!--") {
            // A comment, up to the line ending with `-->`.
            let mut end = rest.trim_end().ends_with("-->");
            while !end {
                let Some(&(_, l)) = lines.get(i) else {
                    return Err(c.err(n, "the comment does not end with `-->`"));
                };
                i += 1;
                end = l.trim_end().ends_with("-->");
            }
            continue;
        }
        if let Some(h) = line.strip_prefix("# ").or(line.strip_prefix("## ")) {
            let macro_ = if line.starts_with("# ") { ".SH" } else { ".SS" };
            if h.contains(['*', '`', '\\', '"']) {
                return Err(c.err(n, "a heading must be plain text"));
            }
            c.request(&format!("{macro_} \"{}\"", h.trim()));
            c.after_heading = true;
            continue;
        }
        if line.starts_with('#') {
            return Err(c.err(n, "only `# ` and `## ` headings are supported"));
        }
        if let Some(lang) = line.strip_prefix("```") {
            if lang.contains('`') {
                return Err(c.err(n, "a code fence is three backquotes and a language"));
            }
            c.paragraph_break();
            c.request(".RS 4\n.nf");
            loop {
                let Some(&(_, l)) = lines.get(i) else {
                    return Err(c.err(n, "the code block does not end"));
                };
                i += 1;
                if l == "```" {
                    break;
                }
                c.request(&code_line(l));
            }
            c.request(".fi\n.RE");
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            return Err(c.err(n, "an indented line outside an item (code is fenced here)"));
        }
        if let Some(item) = line.strip_prefix("* ") {
            let mut block = vec![(n, item)];
            while let Some(&(m, l)) = lines.get(i) {
                match l.strip_prefix("  ") {
                    Some(more) if !more.trim().is_empty() => block.push((m, more)),
                    _ => break,
                }
                i += 1;
            }
            c.after_heading = false;
            c.request(".IP \\(bu 2");
            c.inline(&block)?;
            continue;
        }
        if line.starts_with(": ") {
            return Err(c.err(n, "a definition without its term on the line before"));
        }
        if let Some(&(m, def)) = lines.get(i).filter(|(_, l)| l.starts_with(": ")) {
            i += 1;
            let mut block = vec![(m, &def[2..])];
            while let Some(&(k, l)) = lines.get(i) {
                match l.strip_prefix("  ") {
                    Some(more) if !more.trim().is_empty() => block.push((k, more)),
                    _ => break,
                }
                i += 1;
            }
            c.after_heading = false;
            c.request(".TP");
            c.inline(&[(n, line)])?;
            c.inline(&block)?;
            continue;
        }
        if line.starts_with("- ") || line.starts_with("+ ") || line.starts_with('|') {
            return Err(c.err(n, "lists are `* `; tables are not supported"));
        }
        // A paragraph: up to a blank line or the start of another block.
        let mut block = vec![(n, line)];
        while let Some(&(m, l)) = lines.get(i) {
            let next_is_def = lines.get(i + 1).is_some_and(|(_, d)| d.starts_with(": "));
            if l.trim().is_empty()
                || l.starts_with('#')
                || l.starts_with("```")
                || l.starts_with("* ")
                || l.starts_with(": ")
                || l.starts_with("<!--")
                || next_is_def
            {
                break;
            }
            block.push((m, l));
            i += 1;
        }
        c.paragraph_break();
        c.inline(&block)?;
    }
    Ok(Page {
        title,
        section,
        body: c.out[body_start..].to_owned(),
        roff: c.out,
        aliases,
        placeholders: c.placeholders,
    })
}

/// The `NAME` of a placeholder line `<!-- @NAME@ -->`, if `line` is one.
fn placeholder(line: &str) -> Option<&str> {
    let name = line.trim().strip_prefix("<!-- @")?.strip_suffix("@ -->")?;
    let ok = !name.is_empty() && name.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_');
    ok.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(body: &str) -> Result<String, MdError> {
        let text = format!("---\ntitle: x_y\nsection: 3\n---\n{body}");
        convert("x.md", &text, "s", "m").map(|p| {
            p.roff
                .split_once(".TH X_Y 3 \"\" \"s\" \"m\"\n")
                .expect("the title line")
                .1
                .to_owned()
        })
    }

    #[test]
    fn blocks_and_inline_markup() {
        let roff = page(
            "# NAME\n\nx_y - a page\n\n# SEE ALSO\n\n**a**(3), *b* and `c-d`\n.e \\*f\n\n\
             * item\n  more\n\nEINVAL\n: bad *x*\n  still\n\n```c\nint .x = a\\b;\n```\n",
        )
        .unwrap();
        assert_eq!(
            roff,
            ".SH \"NAME\"\nx_y \\- a page\n.SH \"SEE ALSO\"\n\\fB\\%a\\fR(3), \\fI\\%b\\fR and \
             \\fB\\%c\\-d\\fR\n\\&.e *f\n.IP \\(bu 2\nitem\nmore\n.TP\nEINVAL\nbad \\fI\\%x\\fR\n\
             still\n.PP\n.RS 4\n.nf\nint .x = a\\eb;\n.fi\n.RE\n"
        );
    }

    #[test]
    fn a_span_inside_a_word_keeps_the_word_whole() {
        assert_eq!(
            page("a (**--b**) {**c**\\|**d**} `e`*f*\n").unwrap(),
            ".PP\na \\%(\\fB\\-\\-b\\fR) \\%{\\fBc\\fR|\\fBd\\fR} \\fB\\%e\\fR\\fIf\\fR\n"
        );
    }

    #[test]
    fn spans_continue_on_the_next_line_of_a_block() {
        assert_eq!(
            page("a **b\nc** d\n").unwrap(),
            ".PP\na \\fB\\%b\nc\\fR d\n"
        );
    }

    #[test]
    fn placeholders_are_kept_as_roff_comments() {
        let text = "---\ntitle: a\nsection: 1\n---\n# NAME\n\na\n<!-- @SYNOPSIS@ -->\n\
                    <!-- a comment -->\nb\n\n<!-- @OPTIONS@ -->\n";
        let page = convert("f", text, "s", "m").unwrap();
        assert_eq!(page.placeholders, ["SYNOPSIS", "OPTIONS"]);
        assert_eq!(
            page.body,
            ".SH \"NAME\"\na\n.\\\" @SYNOPSIS@\n.PP\nb\n.\\\" @OPTIONS@\n"
        );
        assert!(page.roff.ends_with(&page.body));
        assert!(page.roff.contains(".TH A 1 "));
        for bad in ["<!-- @x@ -->", "<!-- @A@ --> b", "<!-- @@ -->"] {
            let text = format!("---\ntitle: a\nsection: 1\n---\n{bad}\n");
            let e = convert("f", &text, "s", "m").unwrap_err();
            assert_eq!(e.line, 5, "{bad}: {e}");
            assert!(e.what.contains("placeholder"), "{bad}: {e}");
        }
    }

    #[test]
    fn aliases_are_so_links() {
        let text = "---\ntitle: a\nsection: 7\naliases: b c.3\n---\n";
        let files = convert("f", text, "s", "m").unwrap().files();
        let so = ".so man7/a.7\n".to_owned();
        assert_eq!(files[1], ("man7/b.7".to_owned(), so.clone()));
        assert_eq!(files[2], ("man3/c.3".to_owned(), so));
        for bad in ["c.", "c.33", "../c", ".3"] {
            let text = format!("---\ntitle: a\nsection: 7\naliases: b {bad}\n---\n");
            let e = convert("f", &text, "s", "m").unwrap_err();
            assert_eq!(e.line, 4, "{bad}: {e}");
            assert!(e.what.contains(bad), "{e}");
        }
    }

    #[test]
    fn what_is_not_supported_is_an_error_with_its_line() {
        for (body, line, what) in [
            ("a *b\n", 5, "not closed"),
            ("[a](b)\n", 5, "link"),
            ("| a | b |\n", 5, "tables"),
            ("x\n\n    code\n", 7, "indented"),
            ("### deep\n", 5, "headings"),
            ("# **b**\n", 5, "plain"),
            ("```\nx\n", 5, "does not end"),
            ("a `b\n", 5, "code span"),
            ("**a *b* c**\n", 5, "italic inside bold"),
            (": d\n", 5, "without its term"),
            ("<!-- x\n", 5, "comment"),
        ] {
            let e = page(body).unwrap_err();
            assert_eq!(e.line, line, "{body:?}: {e}");
            assert!(e.what.contains(what), "{body:?}: {e}");
            assert!(e.to_string().starts_with(&format!("x.md:{line}: ")));
        }
        let e = convert("f", "title: a\n", "s", "m").unwrap_err();
        assert_eq!((e.line, e.what.contains("front matter")), (1, true));
        let e = convert("f", "---\ntitle: a b\nsection: 3\n---\n", "s", "m").unwrap_err();
        assert!(e.what.contains("not a page name"), "{e}");
    }
}
