//! A tiny hand-written SVG chart: one plot area with an x and a y [`Axis`]
//! (linear or log), grid and ticks, a legend beside the plot, and the marks
//! the report draws — lines, steps, scatter points, shaded bands and vertical
//! markers. Three plots do not justify trusting a plotting crate.
//!
//! Marks are thinned to what a pixel can show (a long run has millions of
//! operations), so the file stays small without hiding outliers.

use std::collections::HashSet;

use super::axis::Axis;

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 440.0;
/// The plot area; the legend sits right of it so it never covers data.
const LEFT: f64 = 70.0;
const RIGHT: f64 = 790.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 385.0;
/// Rows for band labels at the top of the plot; a label with no free row is
/// left out (the band and its tooltip remain) rather than drawn over another.
const LABEL_LANES_MAX: usize = 4;
/// Labels drawn over data get a white outline so they stay readable.
const HALO: &str = r#"font-size="10" stroke="white" stroke-width="3" stroke-opacity="0.8" paint-order="stroke""#;
/// Rough width of one character at the label font size, to keep labels apart.
const CHAR_WIDTH_PX: f64 = 6.2;

#[derive(Debug, Clone, Copy)]
pub enum Marker {
    Circle,
    Square,
}

enum Swatch {
    Line(&'static str),
    Point(&'static str, Marker),
}

pub struct Chart {
    title: String,
    x: Axis,
    y: Axis,
    /// Bands and vertical markers, drawn under the data.
    background: String,
    data: String,
    /// Band and marker labels, drawn over the data.
    labels: String,
    legend: Vec<(Swatch, String)>,
    /// The right end (px) of the last label in each lane.
    lanes: Vec<f64>,
    has_data: bool,
}

impl Chart {
    pub fn new(title: &str, x: Axis, y: Axis) -> Chart {
        Chart {
            title: title.to_string(),
            x,
            y,
            background: String::new(),
            data: String::new(),
            labels: String::new(),
            legend: Vec::new(),
            lanes: Vec::new(),
            has_data: false,
        }
    }

    fn px(&self, x: f64) -> f64 {
        LEFT + self.x.fraction(x) * (RIGHT - LEFT)
    }

    fn py(&self, y: f64) -> f64 {
        BOTTOM - self.y.fraction(y) * (BOTTOM - TOP)
    }

    /// A shaded span of x, labelled at the top; `tooltip` shows on hover.
    pub fn band(&mut self, x0: f64, x1: f64, color: &str, label: &str, tooltip: &str) {
        let (left, right) = (self.px(x0), self.px(x1).max(self.px(x0) + 1.0));
        self.background.push_str(&format!(
            r#"<rect x="{left:.1}" y="{TOP}" width="{:.1}" height="{}" fill="{color}" fill-opacity="0.13"><title>{}</title></rect>"#,
            right - left,
            BOTTOM - TOP,
            escape(tooltip)
        ));
        self.background.push('\n');
        let label_end = left + 3.0 + label.chars().count() as f64 * CHAR_WIDTH_PX;
        let lane = self.lanes.iter().position(|end| *end < left);
        let lane = match lane {
            Some(lane) => lane,
            None if self.lanes.len() < LABEL_LANES_MAX => {
                self.lanes.push(0.0);
                self.lanes.len() - 1
            }
            None => return,
        };
        self.lanes[lane] = label_end;
        let y = TOP + 12.0 + lane as f64 * 12.0;
        self.labels.push_str(&format!(
            r#"<text x="{:.1}" y="{y}" fill="{color}" {HALO}>{}</text>"#,
            left + 3.0,
            escape(label)
        ));
        self.labels.push('\n');
    }

    /// A dashed vertical line across the plot, labelled along it from the bottom.
    pub fn vline(&mut self, x: f64, color: &str, label: &str) {
        let x = self.px(x);
        self.background.push_str(&format!(
            r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{BOTTOM}" stroke="{color}" stroke-dasharray="4 3"/>"#
        ));
        self.background.push('\n');
        self.labels.push_str(&format!(
            r#"<text transform="translate({:.1},{}) rotate(-90)" fill="{color}" {HALO}>{}</text>"#,
            x - 3.0,
            BOTTOM - 4.0,
            escape(label)
        ));
        self.labels.push('\n');
    }

    /// A polyline through `points` in data coordinates.
    pub fn line(&mut self, points: &[(f64, f64)], color: &'static str, label: &str) {
        let pixels: Vec<(f64, f64)> = points.iter().map(|(x, y)| (self.px(*x), self.py(*y))).collect();
        self.path(&pixels, color);
        self.legend.push((Swatch::Line(color), label.to_string()));
    }

    /// A step line: each point's y holds until the next point's x.
    pub fn steps(&mut self, points: &[(f64, f64)], color: &'static str, label: &str) {
        let mut pixels = Vec::with_capacity(points.len() * 2);
        for (x, y) in points {
            let (x, y) = (self.px(*x), self.py(*y));
            if let Some(&(_, previous_y)) = pixels.last() {
                pixels.push((x, previous_y));
            }
            pixels.push((x, y));
        }
        self.path(&pixels, color);
        self.legend.push((Swatch::Line(color), label.to_string()));
    }

    fn path(&mut self, pixels: &[(f64, f64)], color: &str) {
        let thinned = thin(pixels);
        let Some(((x0, y0), rest)) = thinned.split_first() else { return };
        self.has_data = true;
        let mut d = format!("M{x0:.1},{y0:.1}");
        for (x, y) in rest {
            d.push_str(&format!(" L{x:.1},{y:.1}"));
        }
        self.data.push_str(&format!(r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="1.5"/>"#));
        self.data.push('\n');
    }

    /// Points, one mark per half-pixel cell: identical-looking marks are
    /// drawn once, outliers always.
    pub fn scatter(&mut self, points: &[(f64, f64)], color: &'static str, marker: Marker, label: &str) {
        let mut cells = HashSet::new();
        let mut marks = String::new();
        for (x, y) in points {
            let (x, y) = (self.px(*x), self.py(*y));
            if !cells.insert(((x * 2.0).round() as i64, (y * 2.0).round() as i64)) {
                continue;
            }
            marks.push_str(&mark(marker, x, y));
        }
        if !points.is_empty() {
            self.has_data = true;
            self.data.push_str(&format!("<g fill=\"{color}\" fill-opacity=\"0.7\">\n{marks}</g>\n"));
        }
        self.legend.push((Swatch::Point(color, marker), label.to_string()));
    }

    pub fn render(self) -> String {
        let mut svg = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">"#
        );
        svg.push('\n');
        svg.push_str(&format!(r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#));
        svg.push_str(&format!(
            "\n<text x=\"{LEFT}\" y=\"22\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
            escape(&self.title)
        ));
        svg.push_str(&format!(
            "<defs><clipPath id=\"plot-area\"><rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\"/></clipPath></defs>\n",
            RIGHT - LEFT,
            BOTTOM - TOP
        ));
        svg.push_str(&self.grid());
        svg.push_str(&format!("<g clip-path=\"url(#plot-area)\">\n{}{}</g>\n", self.background, self.data));
        svg.push_str(&self.labels);
        svg.push_str(&format!(
            "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n",
            RIGHT - LEFT,
            BOTTOM - TOP
        ));
        svg.push_str(&self.axis_labels());
        svg.push_str(&self.legend());
        if !self.has_data {
            svg.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"16\" fill=\"#888\">no data</text>\n",
                (LEFT + RIGHT) / 2.0,
                (TOP + BOTTOM) / 2.0
            ));
        }
        svg.push_str("</svg>\n");
        svg
    }

    /// Grid lines, tick marks and tick labels of both axes.
    fn grid(&self) -> String {
        let mut out = String::new();
        for tick in self.x.ticks() {
            let x = self.px(tick.value);
            out.push_str(&format!(r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{BOTTOM}" stroke="#eee"/>"##));
            if let Some(label) = tick.label {
                out.push_str(&format!(
                    r#"<line x1="{x:.1}" y1="{BOTTOM}" x2="{x:.1}" y2="{}" stroke="black"/><text x="{x:.1}" y="{}" text-anchor="middle">{label}</text>"#,
                    BOTTOM + 5.0,
                    BOTTOM + 17.0
                ));
            }
            out.push('\n');
        }
        for tick in self.y.ticks() {
            let y = self.py(tick.value);
            out.push_str(&format!(r##"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="#eee"/>"##));
            if let Some(label) = tick.label {
                out.push_str(&format!(
                    r#"<line x1="{}" y1="{y:.1}" x2="{LEFT}" y2="{y:.1}" stroke="black"/><text x="{}" y="{:.1}" text-anchor="end">{label}</text>"#,
                    LEFT - 5.0,
                    LEFT - 7.0,
                    y + 4.0
                ));
            }
            out.push('\n');
        }
        out
    }

    fn axis_labels(&self) -> String {
        format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n<text transform=\"translate(16,{:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
            (LEFT + RIGHT) / 2.0,
            HEIGHT - 12.0,
            escape(self.x.label()),
            (TOP + BOTTOM) / 2.0,
            escape(self.y.label())
        )
    }

    fn legend(&self) -> String {
        let mut out = String::new();
        let x = RIGHT + 15.0;
        for (row, (swatch, label)) in self.legend.iter().enumerate() {
            let y = TOP + 10.0 + row as f64 * 18.0;
            match swatch {
                Swatch::Line(color) => out.push_str(&format!(
                    r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="2"/>"#,
                    x + 20.0
                )),
                Swatch::Point(color, marker) => {
                    out.push_str(&format!(r#"<g fill="{color}">{}</g>"#, mark(*marker, x + 10.0, y)));
                }
            }
            out.push_str(&format!(r#"<text x="{}" y="{}">{}</text>"#, x + 26.0, y + 4.0, escape(label)));
            out.push('\n');
        }
        out
    }
}

fn mark(marker: Marker, x: f64, y: f64) -> String {
    match marker {
        Marker::Circle => format!("<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.2\"/>\n"),
        Marker::Square => format!("<rect x=\"{:.1}\" y=\"{:.1}\" width=\"4\" height=\"4\"/>\n", x - 2.0, y - 2.0),
    }
}

/// Keeps, of each run of consecutive pixels in one half-pixel column, the
/// first, the lowest, the highest and the last: the drawn line looks the same.
fn thin(pixels: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    let mut column: Vec<(f64, f64)> = Vec::new();
    let flush = |column: &mut Vec<(f64, f64)>, out: &mut Vec<(f64, f64)>| {
        let (Some(&first), Some(&last)) = (column.first(), column.last()) else { return };
        let low = column.iter().copied().fold(first, |a, b| if b.1 < a.1 { b } else { a });
        let high = column.iter().copied().fold(first, |a, b| if b.1 > a.1 { b } else { a });
        for point in [first, low, high, last] {
            if out.last() != Some(&point) {
                out.push(point);
            }
        }
        column.clear();
    };
    for &point in pixels {
        let same_column = column.first().is_some_and(|first| (first.0 * 2.0).round() == (point.0 * 2.0).round());
        if !same_column {
            flush(&mut column, &mut out);
        }
        column.push(point);
    }
    flush(&mut column, &mut out);
    out
}

/// Escapes text for SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_extremes_of_each_pixel_column() {
        let pixels = [(10.0, 5.0), (10.1, 1.0), (10.1, 9.0), (10.2, 4.0), (20.0, 4.0)];
        assert_eq!(thin(&pixels), vec![(10.0, 5.0), (10.1, 1.0), (10.1, 9.0), (10.2, 4.0), (20.0, 4.0)]);
        let flat: Vec<(f64, f64)> = (0..1000).map(|i| (10.0 + i as f64 * 1e-4, 3.0)).collect();
        assert_eq!(thin(&flat), vec![flat[0], flat[999]]);
    }

    #[test]
    fn text_is_escaped_for_xml() {
        assert_eq!(escape(r#"a<b & "c">"#), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}
