//! Charts over a time window, drawn on the server as SVG: stacked bars of counts, or lines of
//! values such as percentiles. Event Management and the Monitoring tab draw theirs here, and
//! every chart carries a table of its numbers for screen readers
//! (`templates/fragments/chart.html`).

use super::parts::moment;
use crate::clock::{Millis, TimeFormat, format_time};
use time::UtcOffset;

const MINUTE: Millis = 60_000;
const HOUR: Millis = 60 * MINUTE;

/// The drawing's size in SVG units; it is stretched to the card's width.
pub const WIDTH: f64 = 720.0;
pub const HEIGHT: f64 = 140.0;

/// The bucket of a window: about 50-100 bars (or points) whatever its length.
pub fn bucket_for(span: Millis) -> Millis {
    match span {
        x if x <= 2 * HOUR => MINUTE,
        x if x <= 26 * HOUR => 30 * MINUTE,
        x if x <= 4 * 24 * HOUR => HOUR,
        x => (x / 72 / MINUTE).max(1) * MINUTE,
    }
}

/// How the values of a bucket are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One bar per bucket, its series stacked.
    Stacked,
    /// One line per series through the buckets that have a value.
    Lines,
}

/// One series: its name in the legend and table, and its CSS class (its colour).
pub type Series = (&'static str, &'static str);

/// One bucket that has data.
pub struct Column {
    pub label: String,
    pub iso: String,
    pub x: f64,
    /// Stacked bars: `(css class, y, height)`.
    pub parts: Vec<(&'static str, f64, f64)>,
    /// Each series' value as shown in the table and the tooltip (`—` for none).
    pub values: Vec<String>,
    /// The tooltip after the time.
    pub summary: String,
}

pub struct Chart {
    /// Unique on its page: the SVG's title is referred to by this id.
    pub id: &'static str,
    /// What it shows, for the heading and the table's caption.
    pub title: &'static str,
    pub kind: Kind,
    pub series: Vec<Series>,
    pub columns: Vec<Column>,
    /// Lines: `(css class, SVG points)`, one per series that has two points or more;
    /// `(css class, x, y)` for a lone point.
    pub lines: Vec<(&'static str, String)>,
    pub dots: Vec<(&'static str, f64, f64)>,
    pub bar_width: f64,
    /// The top of the scale, as text.
    pub max: String,
    pub first_label: (String, String),
    pub last_label: (String, String),
}

/// What a chart shows and how its values read.
pub struct Spec {
    pub id: &'static str,
    pub title: &'static str,
    pub kind: Kind,
    pub series: Vec<Series>,
    /// A value as text, e.g. `12` or `1.2 s`.
    pub format: fn(f64) -> String,
    /// What stacked values count, for a bucket's tooltip (`12 events`).
    pub unit: &'static str,
}

impl Spec {
    /// A bucket's tooltip: the total of stacked values (`12 events`), or each line's value
    /// (`p50 ≈ 250 ms, p95 ≈ 4.5 s`).
    fn summary(&self, values: &[Option<f64>]) -> String {
        match self.kind {
            Kind::Stacked => format!(
                "{} {}",
                (self.format)(values.iter().flatten().sum()),
                self.unit
            ),
            Kind::Lines => self
                .series
                .iter()
                .zip(values)
                .filter_map(|((label, _), v)| v.map(|v| format!("{label} {}", (self.format)(v))))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

impl Chart {
    /// Draws `points` (`(bucket start, one value per series)`, oldest first) over `window`
    /// in buckets of `bucket` milliseconds.
    pub fn draw(
        spec: Spec,
        window: (Millis, Millis),
        bucket: Millis,
        points: &[(Millis, Vec<Option<f64>>)],
    ) -> Chart {
        // Buckets start at whole multiples of their length (as the rollups group them), so
        // the first one may begin before the window: the slots count from its start.
        let origin = window.0 - window.0.rem_euclid(bucket);
        let span = (window.1 - origin).max(1);
        let slots = ((span + bucket - 1) / bucket).max(1);
        let slot_width = WIDTH / slots as f64;
        let shown: Vec<&(Millis, Vec<Option<f64>>)> = points
            .iter()
            .filter(|(at, _)| *at + bucket > window.0 && *at < window.1)
            .collect();
        let max = shown
            .iter()
            .map(|(_, values)| match spec.kind {
                Kind::Stacked => values.iter().flatten().sum::<f64>(),
                Kind::Lines => values.iter().flatten().copied().fold(0.0, f64::max),
            })
            .fold(0.0, f64::max);
        // Values are drawn below the top by a little, so the largest bar is not cut.
        let scale = |v: f64| {
            if max > 0.0 {
                v / max * (HEIGHT - 4.0)
            } else {
                0.0
            }
        };
        let x_of = |at: Millis| ((at - origin).max(0) / bucket) as f64 * slot_width;
        let mut lines: Vec<Vec<(f64, f64)>> = vec![Vec::new(); spec.series.len()];
        let columns = shown
            .iter()
            .map(|(at, values)| {
                let x = x_of(*at);
                let mut parts = Vec::new();
                match spec.kind {
                    Kind::Stacked => {
                        let mut y = HEIGHT;
                        for ((_, class), v) in spec.series.iter().zip(values) {
                            if let Some(v) = v.filter(|v| *v > 0.0) {
                                let h = scale(v);
                                y -= h;
                                parts.push((*class, y, h));
                            }
                        }
                    }
                    Kind::Lines => {
                        for (line, v) in lines.iter_mut().zip(values) {
                            if let Some(v) = v {
                                line.push((x + slot_width / 2.0, HEIGHT - scale(*v)));
                            }
                        }
                    }
                }
                Column {
                    label: format_time(*at, UtcOffset::UTC, TimeFormat::DateTime),
                    iso: format_time(*at, UtcOffset::UTC, TimeFormat::Rfc3339),
                    x,
                    parts,
                    values: values
                        .iter()
                        .map(|v| v.map_or_else(|| "—".to_string(), spec.format))
                        .collect(),
                    summary: spec.summary(values),
                }
            })
            .collect();
        let classes = spec.series.iter().map(|(_, class)| *class);
        let (mut drawn, mut dots) = (Vec::new(), Vec::new());
        for (class, line) in classes.zip(lines) {
            match line.as_slice() {
                [] => {}
                [(x, y)] => dots.push((class, *x, *y)),
                _ => drawn.push((
                    class,
                    line.iter()
                        .map(|(x, y)| format!("{x:.1},{y:.1}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                )),
            }
        }
        Chart {
            id: spec.id,
            title: spec.title,
            kind: spec.kind,
            series: spec.series,
            columns,
            lines: drawn,
            dots,
            bar_width: (slot_width - 1.0).max(1.0),
            max: (spec.format)(max),
            first_label: moment(window.0),
            last_label: moment(window.1),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

/// The `p` quantile of a histogram (`(upper bound, count)`, shortest first), estimated
/// linearly within its bucket; `None` when it holds nothing.
pub fn histogram_quantile(histogram: &[(i64, i64)], p: f64) -> Option<f64> {
    let total: i64 = histogram.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let target = total as f64 * p;
    let (mut seen, mut lower) = (0i64, 0i64);
    for (upper, n) in histogram {
        if (seen + n) as f64 >= target && *n > 0 {
            let within = (target - seen as f64) / *n as f64;
            return Some(lower as f64 + within * (upper - lower) as f64);
        }
        seen += n;
        lower = *upper;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: Kind) -> Spec {
        Spec {
            id: "t",
            title: "T",
            kind,
            series: vec![("A", "a"), ("B", "b")],
            format: |v| format!("{v:.0}"),
            unit: "events",
        }
    }

    #[test]
    fn stacked_bars_share_one_scale_and_skip_empty_series() {
        let chart = Chart::draw(
            spec(Kind::Stacked),
            (0, 4 * MINUTE),
            MINUTE,
            &[
                (0, vec![Some(2.0), Some(2.0)]),
                (2 * MINUTE, vec![Some(2.0), None]),
            ],
        );
        assert_eq!(chart.max, "4");
        assert_eq!(chart.columns.len(), 2);
        let first = &chart.columns[0].parts;
        assert_eq!(first.len(), 2);
        // The tallest column reaches the top margin; the other is half its height.
        assert!((first[0].2 + first[1].2 - (HEIGHT - 4.0)).abs() < 1e-9);
        assert_eq!(chart.columns[1].parts.len(), 1);
        assert!((chart.columns[1].parts[0].2 - (HEIGHT - 4.0) / 2.0).abs() < 1e-9);
        assert_eq!(chart.columns[1].x, WIDTH / 2.0);
        assert_eq!(chart.columns[1].values, vec!["2", "—"]);
        assert_eq!(chart.columns[0].summary, "4 events");
    }

    #[test]
    fn lines_go_through_the_buckets_that_have_a_value() {
        let chart = Chart::draw(
            spec(Kind::Lines),
            (0, 4 * MINUTE),
            MINUTE,
            &[
                (0, vec![Some(10.0), Some(40.0)]),
                (MINUTE, vec![Some(20.0), None]),
            ],
        );
        assert_eq!(chart.max, "40");
        assert_eq!(chart.lines.len(), 1, "A has two points");
        assert_eq!(chart.lines[0].0, "a");
        assert_eq!(chart.dots.len(), 1, "B has one");
        assert_eq!(chart.lines[0].1.split(' ').count(), 2);
        assert_eq!(chart.columns[0].summary, "A 10, B 40");
        assert_eq!(chart.columns[1].summary, "A 20");
    }

    #[test]
    fn buckets_keep_their_own_slots_when_the_window_starts_inside_one() {
        // The window starts 30 s into the first minute's bucket.
        let chart = Chart::draw(
            spec(Kind::Stacked),
            (30_000, 4 * MINUTE + 30_000),
            MINUTE,
            &[(0, vec![Some(1.0), None]), (MINUTE, vec![Some(1.0), None])],
        );
        let width = WIDTH / 5.0;
        assert_eq!(chart.columns[0].x, 0.0);
        assert!((chart.columns[1].x - width).abs() < 1e-9);
    }

    #[test]
    fn quantiles_are_estimated_within_their_bucket() {
        let h = [(10, 50), (100, 50)];
        assert_eq!(histogram_quantile(&h, 0.5), Some(10.0));
        assert_eq!(histogram_quantile(&h, 0.75), Some(55.0));
        assert_eq!(histogram_quantile(&[], 0.5), None);
    }
}
