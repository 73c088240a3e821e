//! The Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;

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

    pub fn into_text(self) -> String {
        self.text
    }

    fn sample(&mut self, name: &str, kind: &str, help: &str, labels: &[(&str, &str)], value: &str) {
        if self.family != name {
            let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
            self.family = name.to_owned();
        }
        self.text.push_str(name);
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
}
