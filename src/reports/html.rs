//! HTML export: one self-contained page (no scripts, no external resources)
//! with the summary, a bar chart of bytes per category and the duplicate
//! groups.
//!
//! The chart is inline SVG drawn with presentation attributes (`width`,
//! `fill`), not CSS, so it renders even under a `default-src 'none'` Content
//! Security Policy such as the REST sidecar sends; the `<style>` block only
//! makes the tables nicer when the page is opened as a downloaded file.
//! Every string that comes from a user (paths, category names, reasons) is
//! escaped with [`escape`].
//!
//! The file is opened from disk, where no server sends a Content-Security-Policy
//! header, so the page carries its own policy in a `<meta>` tag, first in
//! `<head>` (a policy governs only what the parser meets after it):
//! [`content_security_policy`]. It is a second line behind the escaping: were
//! markup ever to slip through, it could load, run, submit or point nothing.

use std::{fmt::Write as _, sync::LazyLock};

use base64::Engine as _;
use sha2::Digest as _;

use super::{DuplicateGroup, Report, ReportWriter, human_bytes, rfc3339};

#[derive(Debug, Default)]
pub struct HtmlWriter {
    groups_written: u64,
}

/// Escapes text for an HTML element or a quoted attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Bar colors, one per category in order (repeating).
const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];
const LABEL_WIDTH: f64 = 170.0;
const BAR_MAX_WIDTH: f64 = 420.0;
const ROW_HEIGHT: f64 = 26.0;
const CHART_WIDTH: f64 = 760.0;
const LABEL_CHARS: usize = 22;

const STYLE: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;\
margin:2rem auto;max-width:62rem;padding:0 1rem;color:#1f2328}\
h1{margin-bottom:.2rem}.muted{color:#59636e}\
table{border-collapse:collapse;margin:.5rem 0 1.5rem;width:100%}\
th,td{border-bottom:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}\
th{background:#f6f8fa}.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1.2rem}dt{font-weight:600}\
ul{margin:0;padding-left:1.1rem}li.kept{font-weight:600}\
.path{white-space:pre-wrap;word-break:break-all}code{font-size:12px}";

/// The report's policy: nothing at all (no script, image, font, connection,
/// frame or plugin; no `<base>`, no form submission) except the one `<style>`
/// block, named by its SHA-256 rather than `'unsafe-inline'`, so an injected
/// `<style>` or `style` attribute would be refused too. The chart is inline
/// SVG drawn with presentation attributes, which no directive governs.
/// `frame-ancestors` and `sandbox` are left out: browsers ignore them in a
/// `<meta>` and log an error.
pub fn content_security_policy() -> &'static str {
    static POLICY: LazyLock<String> = LazyLock::new(|| {
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'"
        )
    });
    &POLICY
}

fn truncate(label: &str) -> String {
    if label.chars().count() > LABEL_CHARS {
        let mut short: String = label.chars().take(LABEL_CHARS - 1).collect();
        short.push('…');
        short
    } else {
        label.to_string()
    }
}

fn summary(html: &mut String, r: &Report) {
    let t = &r.totals;
    let when =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map(rfc3339).unwrap_or_else(|| "—".into());
    let rows: [(&str, String); 18] = [
        ("Kind", r.kind.to_string()),
        ("State", r.state.to_string()),
        ("Dry run", if r.dry_run { "yes" } else { "no" }.into()),
        ("Started", when(r.start_time)),
        ("Ended", when(r.end_time)),
        (
            "Duration",
            r.duration
                .map(|d| format!("{:.3} s", d.as_secs_f64()))
                .unwrap_or_else(|| "—".into()),
        ),
        ("Files scanned", t.files_scanned.to_string()),
        ("Files planned", t.files_planned.to_string()),
        ("Files moved", t.files_moved.to_string()),
        ("Files skipped", t.files_skipped.to_string()),
        ("Files failed", t.files_failed.to_string()),
        (
            "Bytes scanned",
            format!("{} ({} B)", human_bytes(t.bytes_scanned), t.bytes_scanned),
        ),
        (
            "Bytes moved",
            format!("{} ({} B)", human_bytes(t.bytes_moved), t.bytes_moved),
        ),
        ("Duplicate groups", r.duplicate_group_count.to_string()),
        ("Duplicate files", r.duplicate_file_count.to_string()),
        (
            "Reclaimable",
            format!(
                "{} ({} B)",
                human_bytes(r.reclaimable_bytes),
                r.reclaimable_bytes
            ),
        ),
        (
            "Dates from metadata",
            r.taken_dates.from_metadata.to_string(),
        ),
        (
            "Dates from modification time",
            r.taken_dates.from_mtime.to_string(),
        ),
    ];
    html.push_str("<section id=\"summary\"><h2>Summary</h2><dl>");
    for (label, value) in rows {
        let _ = write!(html, "<dt>{label}</dt><dd>{}</dd>", escape(&value));
    }
    html.push_str("</dl></section>\n");
}

fn chart(html: &mut String, r: &Report) {
    html.push_str("<section id=\"categories\"><h2>Bytes per category</h2>\n");
    if r.categories.is_empty() {
        html.push_str("<p>No categorized files.</p></section>\n");
        return;
    }
    let max = r
        .categories
        .iter()
        .map(|c| c.size_bytes)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let height = ROW_HEIGHT * r.categories.len() as f64 + 8.0;
    let _ = writeln!(
        html,
        "<svg id=\"category-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{CHART_WIDTH}\" \
         height=\"{height}\" viewBox=\"0 0 {CHART_WIDTH} {height}\" role=\"img\" \
         aria-labelledby=\"category-chart-title\"><title id=\"category-chart-title\">Bytes per \
         category</title>"
    );
    for (i, c) in r.categories.iter().enumerate() {
        let y = 4.0 + ROW_HEIGHT * i as f64;
        let mut width = (BAR_MAX_WIDTH * c.size_bytes as f64 / max * 10.0).round() / 10.0;
        if c.size_bytes > 0 && width < 1.0 {
            width = 1.0;
        }
        let name = escape(&c.category);
        let detail = format!(
            "{}: {} files, {} ({:.1}%)",
            c.category,
            c.file_count,
            human_bytes(c.size_bytes),
            c.percentage
        );
        let _ = writeln!(
            html,
            "<g class=\"bar-row\" transform=\"translate(0,{y})\">\
             <text x=\"0\" y=\"15\" font-size=\"13\" font-family=\"sans-serif\" fill=\"#1f2328\">{label}</text>\
             <rect class=\"bar\" data-category=\"{name}\" data-bytes=\"{bytes}\" x=\"{LABEL_WIDTH}\" y=\"2\" \
             width=\"{width}\" height=\"18\" rx=\"2\" fill=\"{color}\"><title>{title}</title></rect>\
             <text x=\"{value_x}\" y=\"15\" font-size=\"12\" font-family=\"sans-serif\" fill=\"#59636e\">\
             {size} · {percent:.1}%</text></g>",
            label = escape(&truncate(&c.category)),
            bytes = c.size_bytes,
            color = PALETTE[i % PALETTE.len()],
            title = escape(&detail),
            value_x = LABEL_WIDTH + width + 6.0,
            size = human_bytes(c.size_bytes),
            percent = c.percentage,
        );
    }
    html.push_str("</svg>\n<table id=\"category-table\"><thead><tr><th>Category</th>\
        <th class=\"num\">Files</th><th class=\"num\">Bytes</th><th class=\"num\">Share</th></tr></thead><tbody>");
    for c in &r.categories {
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}%</td></tr>",
            escape(&c.category),
            c.file_count,
            c.size_bytes,
            c.percentage
        );
    }
    html.push_str("</tbody></table></section>\n");
}

fn largest(html: &mut String, r: &Report) {
    html.push_str("<section id=\"largest\"><h2>Largest files</h2>");
    if r.largest_files.is_empty() {
        html.push_str("<p>No files.</p></section>\n");
        return;
    }
    html.push_str(
        "<table><thead><tr><th>Path</th><th>Category</th><th>Status</th>\
        <th class=\"num\">Size</th></tr></thead><tbody>",
    );
    for f in &r.largest_files {
        let path = f.current_path();
        let _ = write!(
            html,
            "<tr><td class=\"path\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            escape(path),
            escape(&f.category),
            escape(f.status.as_str()),
            human_bytes(f.size_bytes)
        );
    }
    html.push_str("</tbody></table></section>\n");
}

impl ReportWriter for HtmlWriter {
    fn begin(&mut self, out: &mut Vec<u8>, r: &Report) {
        let mut html = String::with_capacity(16 * 1024);
        let _ = write!(
            html,
            "<!DOCTYPE html>\n<html lang=\"en\"><head>\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\
             <meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Report of {op}</title><style>{STYLE}</style></head>\n<body>\
             <header><h1>Operation report</h1><p class=\"muted\">{op} · computed {at}</p></header>\n",
            csp = content_security_policy(),
            op = escape(&r.operation_name()),
            at = rfc3339(r.compute_time),
        );
        summary(&mut html, r);
        chart(&mut html, r);
        largest(&mut html, r);
        let _ = writeln!(
            html,
            "<section id=\"duplicates\"><h2>Duplicate groups</h2><p>{} groups, {} duplicate files, \
             {} reclaimable.</p>",
            r.duplicate_group_count,
            r.duplicate_file_count,
            human_bytes(r.reclaimable_bytes)
        );
        out.extend_from_slice(html.as_bytes());
        self.groups_written = 0;
    }

    fn group(&mut self, out: &mut Vec<u8>, g: &DuplicateGroup) {
        let mut html = String::with_capacity(512);
        if self.groups_written == 0 {
            html.push_str(
                "<table id=\"duplicate-groups\"><thead><tr><th>Content (blake3)</th>\
                 <th class=\"num\">Size</th><th class=\"num\">Files</th>\
                 <th class=\"num\">Reclaimable</th><th>Files (the kept one first)</th></tr></thead><tbody>\n",
            );
        }
        self.groups_written += 1;
        let hash = hex::encode(&g.content_hash);
        let _ = write!(
            html,
            "<tr class=\"group\"><td><code title=\"{hash}\">{short}…</code></td><td class=\"num\">{size}</td>\
             <td class=\"num\">{count}</td><td class=\"num\">{reclaim}</td><td><ul>",
            short = &hash[..hash.len().min(12)],
            size = human_bytes(g.size_bytes),
            count = g.file_count,
            reclaim = human_bytes(g.reclaimable_bytes),
        );
        for f in &g.files {
            let _ = write!(
                html,
                "<li class=\"path{kept}\">{path}{label}</li>",
                kept = if f.kept { " kept" } else { "" },
                path = escape(&f.path),
                label = if f.kept { " (kept)" } else { "" },
            );
        }
        html.push_str("</ul></td></tr>\n");
        out.extend_from_slice(html.as_bytes());
    }

    fn end_groups(&mut self, out: &mut Vec<u8>) {
        if self.groups_written == 0 {
            out.extend_from_slice(b"<p>No duplicates found.</p>");
        } else {
            out.extend_from_slice(b"</tbody></table>");
        }
        out.extend_from_slice(b"</section>\n");
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            b"<footer class=\"muted\"><p>Exported by FileOrganizer Pro.</p></footer></body></html>\n",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<img src=x onerror=\"a('b')\">&"),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
        assert_eq!(escape("plain"), "plain");
    }

    /// The policy is the first thing in `<head>`, and the hash it names is
    /// that of the style block the page really holds.
    #[test]
    fn the_page_opens_with_its_policy_which_admits_its_own_style_only() {
        let report = Report {
            operation_id: uuid::Uuid::nil(),
            kind: crate::domain::OperationKind::Organize,
            state: crate::domain::OperationState::Succeeded,
            dry_run: false,
            start_time: None,
            end_time: None,
            duration: None,
            totals: Default::default(),
            categories: vec![],
            top_categories: vec![],
            largest_files: vec![],
            duplicate_group_count: 0,
            duplicate_file_count: 0,
            reclaimable_bytes: 0,
            compute_time: chrono::Utc::now(),
            taken_dates: Default::default(),
        };
        let mut out = Vec::new();
        let mut writer = HtmlWriter::default();
        writer.begin(&mut out, &report);
        writer.end_groups(&mut out);
        writer.finish(&mut out);
        let html = String::from_utf8(out).unwrap();
        let head = html.split_once("<head>").unwrap().1;
        let policy = content_security_policy();
        assert!(
            head.starts_with(&format!(
                "<meta http-equiv=\"Content-Security-Policy\" content=\"{policy}\">"
            )),
            "{head}"
        );
        assert!(policy.starts_with("default-src 'none'; "), "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");
        let style = html.split_once("<style>").unwrap().1;
        let style = style.split_once("</style>").unwrap().0;
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(style));
        assert!(
            policy.contains(&format!("style-src 'sha256-{hash}';")),
            "{policy}"
        );
        assert_eq!(html.matches("<style>").count(), 1);
    }

    #[test]
    fn long_labels_are_shortened() {
        assert_eq!(truncate("Images"), "Images");
        assert_eq!(truncate(&"x".repeat(40)).chars().count(), LABEL_CHARS);
    }
}
