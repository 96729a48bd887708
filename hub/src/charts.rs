//! Charts drawn on the server as inline SVG: no scripts, no external assets, and they print.

/// Escapes text for SVG/XML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Horizontal bars, one row per (label, value); `series` colours several values per row.
pub fn bars(rows: &[(String, Vec<u64>)], colours: &[&str], legend: &[&str]) -> String {
    let max = rows
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let row_h = 22 * colours.len().max(1) + 8;
    let label_w = 170;
    let bar_w = 520;
    let height = rows.len() * row_h + 30;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" role="img" font-size="13">"#,
        label_w + bar_w + 60
    );
    for (i, name) in legend.iter().enumerate() {
        let x = label_w + i * 120;
        out.push_str(&format!(
            r#"<rect x="{x}" y="4" width="12" height="12" fill="{}"/><text x="{}" y="15">{}</text>"#,
            colours[i % colours.len()],
            x + 16,
            esc(name)
        ));
    }
    for (r, (label, values)) in rows.iter().enumerate() {
        let y = 26 + r * row_h;
        out.push_str(&format!(
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            label_w - 8,
            y + 15,
            esc(label)
        ));
        for (i, v) in values.iter().enumerate() {
            let w = (*v as f64 / max as f64 * bar_w as f64).round() as u64;
            let by = y + i * 22;
            out.push_str(&format!(
                r#"<rect x="{label_w}" y="{by}" width="{w}" height="18" fill="{}"/><text x="{}" y="{}">{v}</text>"#,
                colours[i % colours.len()],
                label_w as u64 + w + 4,
                by + 14
            ));
        }
    }
    out.push_str("</svg>");
    out
}

/// Vertical bars over days (intake per day).
pub fn columns(points: &[(String, u64)], colour: &str) -> String {
    let max = points.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let col_w = 22;
    let h = 160;
    let width = points.len() * col_w + 40;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" role="img" font-size="10">"#,
        h + 40
    );
    for (i, (day, v)) in points.iter().enumerate() {
        let bh = (*v as f64 / max as f64 * h as f64).round() as usize;
        let x = 20 + i * col_w;
        out.push_str(&format!(
            r#"<rect x="{x}" y="{}" width="{}" height="{bh}" fill="{colour}"><title>{} {v}</title></rect>"#,
            h - bh + 10,
            col_w - 4,
            esc(day)
        ));
        if i % 5 == 0 || i + 1 == points.len() {
            out.push_str(&format!(
                r#"<text x="{x}" y="{}">{}</text>"#,
                h + 28,
                esc(day.get(5..).unwrap_or(day))
            ));
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_escaped_labels() {
        let svg = bars(
            &[("人社<>".into(), vec![3, 1])],
            &["#b3261e", "#e0b000"],
            &["超期", "黄灯"],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("人社&lt;&gt;"));
        let col = columns(&[("2026-11-27".into(), 4)], "#0b57d0");
        assert!(col.contains("<rect"));
    }
}
