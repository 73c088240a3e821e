//! The Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;

use crate::histogram::HistogramSnapshot;

/// A scrape's text, built one sample at a time. A family's `# HELP` and
/// `# TYPE` lines are written before its first sample, so samples of one
/// family must be added together.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
    family: String,
}

impl Exposition {
    /// A counter: a total that only grows (its name ends in `_total`).
    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: u64) {
        self.sample(name, "counter", help, labels, &value.to_string());
    }

    /// A counter whose total is not a whole number (seconds of CPU).
    pub fn counter_f64(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.sample(name, "counter", help, labels, &value.to_string());
    }

    /// A gauge: a value that goes up and down, in the unit its name ends with.
    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.sample(name, "gauge", help, labels, &value.to_string());
    }

    /// A histogram: `name_bucket` per bound (cumulative, with `le`), then
    /// `name_bucket{le="+Inf"}`, `name_sum` and `name_count`.
    pub fn histogram(&mut self, name: &str, help: &str, labels: &[(&str, &str)], histogram: &HistogramSnapshot) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let bounds: Vec<String> = histogram.buckets.iter().map(|(bound, _)| bound.to_string()).collect();
        let counts = histogram.buckets.iter().map(|(_, count)| *count);
        let les = bounds.iter().map(String::as_str).chain(["+Inf"]);
        for (le, count) in les.zip(counts.chain([histogram.count])) {
            let mut with_le = labels.to_vec();
            with_le.push(("le", le));
            self.line(&bucket, &with_le, &count.to_string());
        }
        self.line(&format!("{name}_sum"), labels, &histogram.sum.to_string());
        self.line(&format!("{name}_count"), labels, &histogram.count.to_string());
    }

    pub fn into_text(self) -> String {
        self.text
    }

    fn sample(&mut self, name: &str, kind: &str, help: &str, labels: &[(&str, &str)], value: &str) {
        self.family(name, kind, help);
        self.line(name, labels, value);
    }

    /// Starts family `name` unless its samples are being written already.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        if self.family != name {
            let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
            self.family = name.to_owned();
        }
    }

    fn line(&mut self, sample: &str, labels: &[(&str, &str)], value: &str) {
        self.text.push_str(sample);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                let separator = if i == 0 { "" } else { "," };
                let _ = write!(self.text, "{separator}{label}=\"{}\"", escape(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value as the format quotes it: backslash, double quote and line
/// feed escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_gets_its_help_and_type_once_and_label_values_are_escaped() {
        let mut text = Exposition::default();
        text.counter("x_total", "Things.", &[("topic", "a")], 3);
        text.counter("x_total", "Things.", &[("topic", "b\"c\\d\ne")], 4);
        text.gauge("y_seconds", "How long.", &[], 1.5);
        assert_eq!(
            text.into_text(),
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total{topic=\"a\"} 3\n\
             x_total{topic=\"b\\\"c\\\\d\\ne\"} 4\n\
             # HELP y_seconds How long.\n# TYPE y_seconds gauge\ny_seconds 1.5\n"
        );
    }

    #[test]
    fn a_histogram_writes_cumulative_buckets_an_infinite_one_its_sum_and_count() {
        static BOUNDS: [f64; 2] = [0.0005, 1.0];
        let histogram = crate::Histogram::new(&BOUNDS);
        for value in [0.0, 0.5, 7.0] {
            histogram.observe(value);
        }
        let mut text = Exposition::default();
        text.histogram("d_seconds", "How long.", &[("method", "m")], &histogram.snapshot());
        assert_eq!(
            text.into_text(),
            "# HELP d_seconds How long.\n# TYPE d_seconds histogram\n\
             d_seconds_bucket{method=\"m\",le=\"0.0005\"} 1\n\
             d_seconds_bucket{method=\"m\",le=\"1\"} 2\n\
             d_seconds_bucket{method=\"m\",le=\"+Inf\"} 3\n\
             d_seconds_sum{method=\"m\"} 7.5\n\
             d_seconds_count{method=\"m\"} 3\n"
        );
    }
}
