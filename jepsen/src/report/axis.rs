//! One chart axis: its range, linear or log scale, and ticks at round
//! numbers (1, 2 or 5 × 10ⁿ apart; decades on a log axis) so people can read
//! values off the plot.

/// Ticks per axis a linear axis aims for.
const TICKS_TARGET: f64 = 8.0;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Scale {
    Linear { step: f64 },
    Log,
}

#[derive(Debug, Clone)]
pub struct Axis {
    label: String,
    min: f64,
    max: f64,
    scale: Scale,
}

/// A grid line; labelled ticks also get a tick mark and a number.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub value: f64,
    pub label: Option<String>,
}

impl Axis {
    /// From 0 to at least `max`, rounded up to a tick.
    pub fn linear(label: &str, max: f64) -> Axis {
        let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
        let step = nice_step(max / TICKS_TARGET);
        let max = (max / step).ceil() * step;
        Axis { label: label.to_string(), min: 0.0, max, scale: Scale::Linear { step } }
    }

    /// Whole decades around `min..=max` (both > 0; others are clamped).
    pub fn log(label: &str, min: f64, max: f64) -> Axis {
        let min = if min.is_finite() && min > 0.0 { min } else { 1.0 };
        let max = if max.is_finite() && max > min { max } else { min };
        let low = min.log10().floor();
        // Strictly above `max`: a point on the frame is half hidden.
        let high = (max.log10().floor() + 1.0).max(low + 1.0);
        Axis { label: label.to_string(), min: 10f64.powf(low), max: 10f64.powf(high), scale: Scale::Log }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Where `value` sits, 0 at `min` and 1 at `max` (outside when out of range).
    pub fn fraction(&self, value: f64) -> f64 {
        match self.scale {
            Scale::Linear { .. } => (value - self.min) / (self.max - self.min),
            Scale::Log => {
                let value = value.max(self.min / 10.0);
                (value.log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
            }
        }
    }

    pub fn ticks(&self) -> Vec<Tick> {
        match self.scale {
            Scale::Linear { step } => {
                let count = ((self.max - self.min) / step).round() as u64;
                (0..=count)
                    .map(|i| {
                        let value = self.min + i as f64 * step;
                        Tick { value, label: Some(format_number(value)) }
                    })
                    .collect()
            }
            Scale::Log => {
                let (low, high) = (self.min.log10().round() as i32, self.max.log10().round() as i32);
                let mut ticks = Vec::new();
                for decade in low..=high {
                    let value = 10f64.powi(decade);
                    ticks.push(Tick { value, label: Some(format_number(value)) });
                    if decade < high {
                        ticks.extend([2.0, 5.0].map(|m| Tick { value: m * value, label: None }));
                    }
                }
                ticks
            }
        }
    }
}

/// The round step (1, 2 or 5 × 10ⁿ) at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    let residual = raw / magnitude;
    let nice = if residual <= 1.0 {
        1.0
    } else if residual <= 2.0 {
        2.0
    } else if residual <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Up to six decimals, without trailing zeros (float noise such as
/// 0.30000000000000004 prints as 0.3).
pub fn format_number(value: f64) -> String {
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(axis: &Axis) -> Vec<String> {
        axis.ticks().into_iter().filter_map(|tick| tick.label).collect()
    }

    #[test]
    fn a_linear_axis_ends_on_a_round_tick() {
        let axis = Axis::linear("s", 12.3);
        assert_eq!(labels(&axis), ["0", "2", "4", "6", "8", "10", "12", "14"]);
        assert_eq!(axis.fraction(7.0), 0.5);
        assert_eq!(labels(&Axis::linear("s", 0.3)), ["0", "0.05", "0.1", "0.15", "0.2", "0.25", "0.3"]);
        assert_eq!(labels(&Axis::linear("s", 0.0)), ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
    }

    #[test]
    fn a_log_axis_spans_whole_decades() {
        let axis = Axis::log("ms", 0.3, 2_500.0);
        assert_eq!(labels(&axis), ["0.1", "1", "10", "100", "1000", "10000"]);
        assert!((axis.fraction(10.0) - 0.4).abs() < 1e-9);
        assert_eq!(labels(&Axis::log("ms", 5.0, 5.0)), ["1", "10"]);
        assert_eq!(labels(&Axis::log("ms", 1.0, 1_000.0)), ["1", "10", "100", "1000", "10000"]);
    }
}
