//! `sparsescope report OUT`: PNG figures and one self-contained `OUT/report/index.html` from a
//! run folder and whatever `rsa`, `prune` and `nullcode` added to it (DESIGN.md "Outputs").
//! `data` reads the folder, `figures` draws the charts (plotters, with the bundled font),
//! `maps` the null-code maps over the photos, `html` the page.

pub mod data;
pub mod draw;
pub mod figures;
pub mod html;
pub mod maps;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use data::RunData;
use html::Section;

#[derive(Debug, Clone, serde::Serialize)]
pub struct ReportSummary {
    pub index: PathBuf,
    /// Every PNG written, in page order.
    pub figures: Vec<PathBuf>,
    /// Sections left out, with the command that adds each.
    pub missing: Vec<String>,
}

/// A figure: (title, file name, draw it into the path -> caption, or `None` when the data for
/// it is absent, with the note to show instead).
type Draw<'a> = Box<dyn Fn(&Path) -> Result<Option<String>> + 'a>;

pub fn report_command(out: &Path) -> Result<ReportSummary> {
    draw::init_font();
    let data = RunData::load(out)?;
    let dir = data.run.path.join("report");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::file(&dir, format!("cannot create the report folder: {e}")))?;

    let mut plan: Vec<(String, String, Draw, String)> = vec![
        (
            "Histograms of positive values".into(),
            "hist_pos.png".into(),
            Box::new(|p: &Path| figures::hist_grid(&data, p).map(Some)),
            String::new(),
        ),
        (
            "% active and decorrelation by depth".into(),
            "depth.png".into(),
            Box::new(|p: &Path| figures::depth(&data, p).map(Some)),
            String::new(),
        ),
        (
            "Firing-rate distributions".into(),
            "firing_rates.png".into(),
            Box::new(|p: &Path| figures::firing(&data, p).map(Some)),
            String::new(),
        ),
    ];
    for (file, what) in [
        ("rdm_pooled_correlation", "pooled"),
        ("rdm_flat_correlation", "flat"),
    ] {
        let data = &data;
        plan.push((
            format!("RDMs of {what} features"),
            format!("{file}.png"),
            Box::new(move |p: &Path| figures::rdms(data, file, p)),
            format!("The run has no {file}.npy (run with --rdm correlation)."),
        ));
    }
    if data.rsa.is_empty() {
        plan.push((
            "RSA between taps".into(),
            String::new(),
            Box::new(|_: &Path| Ok(None)),
            format!(
                "Run `sparsescope rsa {}` to add the RSA matrix.",
                out.display()
            ),
        ));
    }
    for (f, v) in &data.rsa {
        let stem = f
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        plan.push((
            format!("RSA between taps ({stem})"),
            format!("{stem}.png"),
            Box::new(move |p: &Path| figures::rsa_matrix(v, p)),
            format!("{} holds no square matrix.", f.display()),
        ));
    }
    let prune_note = format!(
        "Run `sparsescope prune {}` to add the pruning curves.",
        out.display()
    );
    match &data.prune {
        Some(v) => plan.push((
            "Pruning curves".into(),
            "prune.png".into(),
            Box::new(move |p: &Path| figures::prune_curves(v, p)),
            prune_note,
        )),
        None => plan.push((
            "Pruning curves".into(),
            String::new(),
            Box::new(|_: &Path| Ok(None)),
            prune_note,
        )),
    }
    let null_note = format!(
        "Run `sparsescope nullcode {}` to add the null-code figures.",
        out.display()
    );
    match &data.nullcode {
        Some(v) => {
            plan.push((
                "Null-code share by depth".into(),
                "nullcode_share.png".into(),
                Box::new(move |p: &Path| figures::null_share(v, p)),
                null_note.clone(),
            ));
            if let Some(tap) = maps::map_tap(v) {
                let data = &data;
                let name = tap["name"].as_str().unwrap_or("?").to_string();
                plan.push((
                    format!("Null-code maps at {name}"),
                    "nullcode_maps.png".into(),
                    Box::new(move |p: &Path| {
                        Ok(maps::null_maps(data, v, tap, p)?.map(|imgs| {
                            format!(
                                "Null tokens (red) of tap {name} over the central crop each \
                                 image was given, left to right, top to bottom: {}.",
                                imgs.iter()
                                    .map(|s| {
                                        Path::new(s)
                                            .file_name()
                                            .map(|f| f.to_string_lossy().into_owned())
                                            .unwrap_or_else(|| s.clone())
                                    })
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }))
                    }),
                    "The run's inputs are not image files (or have moved), so there is nothing to \
                     draw the maps over."
                        .into(),
                ));
            }
        }
        None => plan.push((
            "Null code".into(),
            String::new(),
            Box::new(|_: &Path| Ok(None)),
            null_note,
        )),
    }

    let mut sections = Vec::new();
    let mut figures = Vec::new();
    let mut missing = Vec::new();
    for (title, file, draw, note) in plan {
        let drawn = if file.is_empty() {
            None
        } else {
            let path = dir.join(&file);
            draw(&path)?.map(|caption| (path, caption))
        };
        match drawn {
            Some((path, caption)) => {
                let png = std::fs::read(&path)
                    .map_err(|e| Error::file(&path, format!("cannot read back: {e}")))?;
                sections.push(Section {
                    title,
                    png: Some(png),
                    file: Some(format!("report/{file}")),
                    caption,
                });
                figures.push(path);
            }
            None => {
                missing.push(note.clone());
                sections.push(Section {
                    title,
                    png: None,
                    file: None,
                    caption: note,
                });
            }
        }
    }
    let index = dir.join("index.html");
    let tmp = dir.join("index.html.tmp");
    std::fs::write(&tmp, html::page(&data, &sections))
        .and_then(|_| std::fs::rename(&tmp, &index))
        .map_err(|e| Error::file(&index, format!("cannot write: {e}")))?;
    Ok(ReportSummary {
        index,
        figures,
        missing,
    })
}
