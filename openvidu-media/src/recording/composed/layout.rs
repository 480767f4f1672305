//! Where each stream goes on the canvas: pure functions of the layout, the canvas size and the
//! streams (in the order they were added), re-evaluated whenever a stream comes or goes.
//!
//! Every rectangle has even coordinates and sizes so that it maps exactly onto the 2×2
//! subsampled chroma planes of the yuv420p canvas.

use openvidu_core::model::RecordingLayout;

/// A rectangle on the canvas, in pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rect {
    /// Left edge.
    pub(crate) x: u32,
    /// Top edge.
    pub(crate) y: u32,
    /// Width.
    pub(crate) w: u32,
    /// Height.
    pub(crate) h: u32,
}

impl Rect {
    /// A rectangle.
    pub(crate) const fn new(x: u32, y: u32, w: u32, h: u32) -> Self {
        Self { x, y, w, h }
    }

    /// Whether the two rectangles share at least one pixel.
    pub(crate) fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.x + other.w
            && other.x < self.x + self.w
            && self.y < other.y + other.h
            && other.y < self.y + self.h
    }

    /// Whether it has no pixel.
    pub(crate) fn is_empty(&self) -> bool {
        self.w == 0 || self.h == 0
    }
}

/// What the layout needs to know about a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CellInput {
    /// The stream shares a screen (`typeOfVideo` SCREEN): presentation layouts feature it.
    pub(crate) screen: bool,
}

/// One stream's place: the index of the stream in the input and its rectangle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cell {
    /// Index in the slice given to [`layout`].
    pub(crate) stream: usize,
    /// Where it is drawn.
    pub(crate) rect: Rect,
}

/// Rounds down to an even number.
const fn even(v: u32) -> u32 {
    v & !1
}

/// The smallest `c` with `c * c >= n`.
fn ceil_sqrt(n: u32) -> u32 {
    let mut c = 0;
    while c * c < n {
        c += 1;
    }
    c
}

/// The cells of `streams` on a `width`×`height` canvas, in drawing order (later cells are drawn
/// over earlier ones: PICTURE_IN_PICTURE draws the small streams over the big one).
///
/// CUSTOM (never started: it is refused earlier) is drawn as BEST_FIT.
pub(crate) fn layout(kind: &RecordingLayout, width: u32, height: u32, streams: &[CellInput]) -> Vec<Cell> {
    let (width, height) = (even(width), even(height));
    let n = streams.len() as u32;
    if n == 0 {
        return Vec::new();
    }
    if n == 1 {
        return vec![Cell { stream: 0, rect: Rect::new(0, 0, width, height) }];
    }
    match kind {
        RecordingLayout::BestFit | RecordingLayout::Custom => best_fit(width, height, n),
        RecordingLayout::PictureInPicture => picture_in_picture(width, height, n),
        RecordingLayout::VerticalPresentation => presentation(width, height, featured(streams), true),
        RecordingLayout::HorizontalPresentation => presentation(width, height, featured(streams), false),
    }
}

/// The stream a presentation layout shows big: the first screen share, else the first stream.
fn featured(streams: &[CellInput]) -> (usize, usize) {
    (streams.iter().position(|s| s.screen).unwrap_or(0), streams.len())
}

/// A grid as openvidu-layout draws BEST_FIT: `cols = ceil(sqrt(n))`, `rows = ceil(n / cols)`,
/// equal cells, the grid centred and an incomplete last row centred.
fn best_fit(width: u32, height: u32, n: u32) -> Vec<Cell> {
    let cols = ceil_sqrt(n);
    let rows = n.div_ceil(cols);
    let (cw, ch) = (even(width / cols), even(height / rows));
    let x0 = even((width - cols * cw) / 2);
    let y0 = even((height - rows * ch) / 2);
    (0..n)
        .map(|i| {
            let (row, col) = (i / cols, i % cols);
            let in_row = if row == rows - 1 { n - row * cols } else { cols };
            let row_x = x0 + even((cols - in_row) * cw / 2);
            Cell { stream: i as usize, rect: Rect::new(row_x + col * cw, y0 + row * ch, cw, ch) }
        })
        .collect()
}

/// The first stream full size, the others a quarter of the canvas wide and high in a row
/// from the bottom-right corner leftwards (and upwards when the row is full), drawn on top.
fn picture_in_picture(width: u32, height: u32, n: u32) -> Vec<Cell> {
    let mut cells = vec![Cell { stream: 0, rect: Rect::new(0, 0, width, height) }];
    let (sw, sh) = (even(width / 4), even(height / 4));
    let margin = even(width.min(height) / 40).max(2);
    let per_row = ((width.saturating_sub(margin)) / (sw + margin)).max(1);
    for k in 0..n - 1 {
        let (row, col) = (k / per_row, k % per_row);
        let x = width.saturating_sub(margin + (col + 1) * sw + col * margin);
        let y = height.saturating_sub(margin + (row + 1) * sh + row * margin);
        cells.push(Cell { stream: (k + 1) as usize, rect: Rect::new(x, y, sw, sh) });
    }
    cells
}

/// One stream big, the others sharing a band a quarter of the canvas wide on the right
/// (`vertical`) or a quarter high at the bottom.
fn presentation(width: u32, height: u32, (big, n): (usize, usize), vertical: bool) -> Vec<Cell> {
    let others = (n - 1) as u32;
    let mut cells = Vec::with_capacity(n);
    if vertical {
        let band = even(width / 4);
        cells.push(Cell { stream: big, rect: Rect::new(0, 0, width - band, height) });
        let h = even(height / others);
        let y0 = even((height - h * others) / 2);
        let rest = (0..n).filter(|&i| i != big);
        for (k, stream) in rest.enumerate() {
            cells.push(Cell { stream, rect: Rect::new(width - band, y0 + k as u32 * h, band, h) });
        }
    } else {
        let band = even(height / 4);
        cells.push(Cell { stream: big, rect: Rect::new(0, 0, width, height - band) });
        let w = even(width / others);
        let x0 = even((width - w * others) / 2);
        let rest = (0..n).filter(|&i| i != big);
        for (k, stream) in rest.enumerate() {
            cells.push(Cell { stream, rect: Rect::new(x0 + k as u32 * w, height - band, w, band) });
        }
    }
    cells
}

/// The largest even size with the aspect ratio of `src_w`×`src_h` that fits in `max_w`×`max_h`
/// (at least 2×2 when the box is).
pub(crate) fn fit(src_w: u32, src_h: u32, max_w: u32, max_h: u32) -> (u32, u32) {
    if src_w == 0 || src_h == 0 || max_w < 2 || max_h < 2 {
        return (even(max_w), even(max_h));
    }
    let (sw, sh, mw, mh) = (u64::from(src_w), u64::from(src_h), u64::from(max_w), u64::from(max_h));
    let (w, h) = if sw * mh >= sh * mw {
        // Wider than the box: full width.
        (mw, (sh * mw + sw / 2) / sw)
    } else {
        ((sw * mh + sh / 2) / sh, mh)
    };
    (even(w.min(mw) as u32).max(2), even(h.min(mh) as u32).max(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u32 = 1280;
    const H: u32 = 720;
    const ALL: [RecordingLayout; 4] = [
        RecordingLayout::BestFit,
        RecordingLayout::PictureInPicture,
        RecordingLayout::VerticalPresentation,
        RecordingLayout::HorizontalPresentation,
    ];

    fn cams(n: usize) -> Vec<CellInput> {
        vec![CellInput::default(); n]
    }

    fn rects(cells: &[Cell]) -> Vec<(usize, (u32, u32, u32, u32))> {
        cells.iter().map(|c| (c.stream, (c.rect.x, c.rect.y, c.rect.w, c.rect.h))).collect()
    }

    /// Invariants of every layout: one cell per stream, inside the canvas, even, non-empty.
    fn check(kind: &RecordingLayout, n: usize, cells: &[Cell]) {
        assert_eq!(cells.len(), n, "{kind:?} n={n}");
        let mut seen: Vec<usize> = cells.iter().map(|c| c.stream).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..n).collect::<Vec<_>>(), "{kind:?} n={n}");
        for c in cells {
            let r = c.rect;
            assert!(!r.is_empty(), "{kind:?} n={n} {r:?}");
            assert!(r.x + r.w <= W && r.y + r.h <= H, "{kind:?} n={n} {r:?}");
            assert!(r.x % 2 == 0 && r.y % 2 == 0 && r.w % 2 == 0 && r.h % 2 == 0, "{kind:?} n={n} {r:?}");
        }
    }

    #[test]
    fn one_stream_fills_the_canvas_in_every_layout() {
        for kind in &ALL {
            let cells = layout(kind, W, H, &cams(1));
            check(kind, 1, &cells);
            assert_eq!(rects(&cells), vec![(0, (0, 0, W, H))], "{kind:?}");
        }
        assert!(layout(&RecordingLayout::BestFit, W, H, &[]).is_empty());
    }

    #[test]
    fn best_fit_grids() {
        let kind = RecordingLayout::BestFit;
        // 2: two columns, one row.
        assert_eq!(rects(&layout(&kind, W, H, &cams(2))), vec![(0, (0, 0, 640, 720)), (1, (640, 0, 640, 720))]);
        // 3: 2x2 grid, the last row's single cell centred.
        assert_eq!(
            rects(&layout(&kind, W, H, &cams(3))),
            vec![(0, (0, 0, 640, 360)), (1, (640, 0, 640, 360)), (2, (320, 360, 640, 360))]
        );
        // 5: 3x2 grid, the last row's two cells centred.
        let five = rects(&layout(&kind, W, H, &cams(5)));
        assert_eq!(
            five,
            vec![
                (0, (0, 0, 426, 360)),
                (1, (426, 0, 426, 360)),
                (2, (852, 0, 426, 360)),
                (3, (212, 360, 426, 360)),
                (4, (638, 360, 426, 360)),
            ]
        );
        // 7: 3x3 grid, 3 + 3 + 1 centred.
        let seven = layout(&kind, W, H, &cams(7));
        check(&kind, 7, &seven);
        assert_eq!(seven[0].rect, Rect::new(0, 0, 426, 240));
        assert_eq!(seven[5].rect, Rect::new(852, 240, 426, 240));
        assert_eq!(seven[6].rect, Rect::new(426, 480, 426, 240));
        for (i, a) in seven.iter().enumerate() {
            for b in &seven[i + 1..] {
                assert!(!a.rect.overlaps(&b.rect), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn picture_in_picture_puts_the_others_bottom_right_on_top() {
        let kind = RecordingLayout::PictureInPicture;
        let two = layout(&kind, W, H, &cams(2));
        check(&kind, 2, &two);
        assert_eq!(two[0], Cell { stream: 0, rect: Rect::new(0, 0, W, H) });
        // Small, in the bottom-right corner (margin 18 px), drawn after the big one.
        assert_eq!(two[1], Cell { stream: 1, rect: Rect::new(W - 18 - 320, H - 18 - 180, 320, 180) });
        let three = layout(&kind, W, H, &cams(3));
        assert_eq!(three[2].rect, Rect::new(W - 2 * 18 - 2 * 320, H - 18 - 180, 320, 180));
        for n in [3, 5, 7] {
            let cells = layout(&kind, W, H, &cams(n));
            check(&kind, n, &cells);
            assert_eq!(cells[0].rect, Rect::new(0, 0, W, H));
            for (i, a) in cells.iter().enumerate().skip(1) {
                assert!(a.rect.w == 320 && a.rect.h == 180);
                for b in &cells[i + 1..] {
                    assert!(!a.rect.overlaps(&b.rect), "n={n} {a:?} {b:?}");
                }
            }
        }
        // 7 streams: 6 small ones, 3 per row, two rows.
        let seven = layout(&kind, W, H, &cams(7));
        assert_eq!(seven[4].rect.y, H - 2 * 18 - 2 * 180);
    }

    #[test]
    fn vertical_presentation_features_the_screen_share() {
        let kind = RecordingLayout::VerticalPresentation;
        let mut streams = cams(3);
        streams[2].screen = true;
        let cells = layout(&kind, W, H, &streams);
        check(&kind, 3, &cells);
        assert_eq!(rects(&cells), vec![(2, (0, 0, 960, 720)), (0, (960, 0, 320, 360)), (1, (960, 360, 320, 360))]);
        // No screen: the first stream is featured.
        let cells = layout(&kind, W, H, &cams(2));
        assert_eq!(rects(&cells), vec![(0, (0, 0, 960, 720)), (1, (960, 0, 320, 720))]);
        for n in [5, 7] {
            let cells = layout(&kind, W, H, &cams(n));
            check(&kind, n, &cells);
            assert!(cells[1..].iter().all(|c| c.rect.x == 960 && c.rect.w == 320));
        }
        let seven = layout(&kind, W, H, &cams(7));
        assert_eq!(seven[6].rect, Rect::new(960, 600, 320, 120));
    }

    #[test]
    fn horizontal_presentation_puts_the_others_in_a_bottom_row() {
        let kind = RecordingLayout::HorizontalPresentation;
        let mut streams = cams(5);
        streams[1].screen = true;
        let cells = layout(&kind, W, H, &streams);
        check(&kind, 5, &cells);
        assert_eq!(
            rects(&cells),
            vec![
                (1, (0, 0, 1280, 540)),
                (0, (0, 540, 320, 180)),
                (2, (320, 540, 320, 180)),
                (3, (640, 540, 320, 180)),
                (4, (960, 540, 320, 180)),
            ]
        );
        for n in [2, 3, 7] {
            let cells = layout(&kind, W, H, &cams(n));
            check(&kind, n, &cells);
            assert!(cells[1..].iter().all(|c| c.rect.y == 540 && c.rect.h == 180));
        }
    }

    #[test]
    fn every_layout_holds_for_many_sizes() {
        for kind in &ALL {
            for n in [1, 2, 3, 5, 7] {
                check(kind, n, &layout(kind, W, H, &cams(n)));
            }
        }
    }

    #[test]
    fn fit_keeps_the_aspect_ratio() {
        assert_eq!(fit(320, 240, 640, 720), (640, 480));
        assert_eq!(fit(640, 480, 1280, 720), (960, 720));
        assert_eq!(fit(1920, 1080, 426, 240), (426, 240));
        assert_eq!(fit(1920, 1080, 320, 360), (320, 180));
        assert_eq!(fit(0, 0, 100, 50), (100, 50));
    }
}
