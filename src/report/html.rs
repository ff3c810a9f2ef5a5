//! The report's single page: every figure embedded as a data: URI, the run's summary and a
//! per-tap table; no scripts, fonts or anything else fetched.

use base64::Engine;

use crate::report::data::RunData;

/// One section of the page: a figure (PNG bytes) or a note saying which command adds it.
pub struct Section {
    pub title: String,
    pub png: Option<Vec<u8>>,
    pub file: Option<String>,
    pub caption: String,
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn row(cells: &[String]) -> String {
    let tds: String = cells.iter().map(|c| format!("<td>{c}</td>")).collect();
    format!("<tr>{tds}</tr>\n")
}

pub fn page(data: &RunData, sections: &[Section]) -> String {
    let s = &data.run.summary;
    let model = &s["model"];
    let adapter = &s["adapter"];
    let mut html = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>sparsescope report</title>\n<style>\n\
         body{font-family:sans-serif;max-width:1300px;margin:2em auto;padding:0 1em;color:#222}\n\
         img{max-width:100%;border:1px solid #ddd}\n\
         table{border-collapse:collapse;font-size:13px}\n\
         td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}\n\
         td:first-child,th:first-child{text-align:left}\n\
         .note{color:#666;font-style:italic}\n\
         </style></head><body>\n",
    );
    html += &format!(
        "<h1>sparsescope report</h1>\n<p>Model <b>{}</b> ({}; {} parameters; sha256 <code>{}</code>)<br>\n\
         Adapter {} ({}, {})<br>\n{} images from <code>{}</code>, input {}<br>\nFlags <code>{}</code></p>\n",
        escape(model["path"].as_str().unwrap_or("?")),
        escape(model["description"].as_str().unwrap_or("?")),
        model["parameters"],
        escape(model["sha256"].as_str().unwrap_or("?")),
        escape(adapter["name"].as_str().unwrap_or("?")),
        escape(adapter["device_type"].as_str().unwrap_or("?")),
        escape(adapter["backend"].as_str().unwrap_or("?")),
        data.run.n_images(),
        escape(s["inputs"]["path"].as_str().unwrap_or("?")),
        escape(&s["inputs"]["image_shape"].to_string()),
        escape(&s["flags"].to_string()),
    );
    html += "<h2>Contents</h2>\n<ol>\n";
    for (i, sec) in sections.iter().enumerate() {
        html += &format!("<li><a href=\"#s{i}\">{}</a></li>\n", escape(&sec.title));
    }
    html += "<li><a href=\"#taps\">Per-tap table</a></li>\n</ol>\n";
    for (i, sec) in sections.iter().enumerate() {
        html += &format!("<h2 id=\"s{i}\">{}</h2>\n", escape(&sec.title));
        match &sec.png {
            Some(png) => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(png);
                html += &format!(
                    "<img alt=\"{}\" src=\"data:image/png;base64,{b64}\">\n<p>{}{}</p>\n",
                    escape(&sec.title),
                    escape(&sec.caption),
                    sec.file
                        .as_ref()
                        .map(|f| format!(" (<code>{}</code>)", escape(f)))
                        .unwrap_or_default()
                );
            }
            None => html += &format!("<p class=\"note\">{}</p>\n", escape(&sec.caption)),
        }
    }
    html += "<h2 id=\"taps\">Per-tap table</h2>\n<table>\n<tr><th>tap</th><th>kind</th><th>depth</th><th>P</th><th>C</th><th>% active</th><th>dead channels</th><th>mean Hoyer</th><th>decorrelation</th></tr>\n";
    for t in &data.taps {
        let stats = &data
            .run
            .tap_summary(&t.name)
            .map(|e| e["stats"].clone())
            .unwrap_or_default();
        html += &row(&[
            escape(&t.name),
            format!("{:?}", t.kind).to_lowercase(),
            t.depth.to_string(),
            t.positions.to_string(),
            t.channels.to_string(),
            format!("{:.2}", 100.0 * t.frac_active),
            stats["dead_channels"].to_string(),
            stats["hoyer_mean"]
                .as_f64()
                .map(|v| format!("{v:.3}"))
                .unwrap_or_default(),
            t.decorrelation
                .map(|v| format!("{v:.3}"))
                .unwrap_or_default(),
        ]);
    }
    html += "</table>\n<p class=\"note\">Every field is documented in the README of sparsescope.</p>\n</body></html>\n";
    html
}
