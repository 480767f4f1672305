//! The yuv420p canvas the compositor draws on, and the cheap nearest-neighbour scaler that puts
//! a decoded picture into its layout cell (aspect ratio kept, black bars).

use super::layout::{Rect, fit};

/// Luma of black in limited-range yuv420p (what FFmpeg's `rawvideo` output uses).
const BLACK_Y: u8 = 16;
/// Chroma of black (and of any grey).
const BLACK_UV: u8 = 128;

/// A decoded picture: planar yuv420p, `w` and `h` even, `data.len() == w * h * 3 / 2`.
#[derive(Debug)]
pub(crate) struct Picture {
    /// Width in pixels.
    pub(crate) w: u32,
    /// Height in pixels.
    pub(crate) h: u32,
    /// Y plane, then U, then V.
    pub(crate) data: Vec<u8>,
}

impl Picture {
    /// The size in bytes of a `w`×`h` yuv420p picture.
    pub(crate) fn byte_len(w: u32, h: u32) -> usize {
        (w as usize) * (h as usize) * 3 / 2
    }

    /// The three planes (Y, U, V), or `None` when `data` has the wrong size.
    fn planes(&self) -> Option<(&[u8], &[u8], &[u8])> {
        let luma = (self.w as usize) * (self.h as usize);
        if self.data.len() != luma * 3 / 2 || !self.w.is_multiple_of(2) || !self.h.is_multiple_of(2) {
            return None;
        }
        let (y, uv) = self.data.split_at(luma);
        let (u, v) = uv.split_at(luma / 4);
        Some((y, u, v))
    }
}

/// A `width`×`height` yuv420p frame being composed.
pub(crate) struct Canvas {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl Canvas {
    /// A black canvas; `width` and `height` must be even.
    pub(crate) fn new(width: u32, height: u32) -> Self {
        let luma = (width as usize) * (height as usize);
        let mut data = vec![BLACK_Y; luma * 3 / 2];
        data[luma..].fill(BLACK_UV);
        Self { width, height, data }
    }

    /// The whole frame, ready for the encoder.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Paints everything black.
    pub(crate) fn clear(&mut self) {
        let luma = (self.width as usize) * (self.height as usize);
        self.data[..luma].fill(BLACK_Y);
        self.data[luma..].fill(BLACK_UV);
    }

    /// The rectangle clipped to the canvas and rounded to even coordinates.
    fn clip(&self, r: Rect) -> Rect {
        let x = r.x.min(self.width) & !1;
        let y = r.y.min(self.height) & !1;
        let w = r.w.min(self.width - x) & !1;
        let h = r.h.min(self.height - y) & !1;
        Rect::new(x, y, w, h)
    }

    /// Paints `rect` black.
    pub(crate) fn fill_black(&mut self, rect: Rect) {
        let r = self.clip(rect);
        let width = self.width;
        let chroma = Rect::new(r.x / 2, r.y / 2, r.w / 2, r.h / 2);
        let (y_plane, u_plane, v_plane) = self.planes_mut();
        fill_plane(y_plane, width, r, BLACK_Y);
        fill_plane(u_plane, width / 2, chroma, BLACK_UV);
        fill_plane(v_plane, width / 2, chroma, BLACK_UV);
    }

    /// Draws `picture` into `rect`: scaled to the largest size with its aspect ratio that fits,
    /// centred, the rest of the rectangle black. A malformed picture leaves the cell black.
    pub(crate) fn draw(&mut self, rect: Rect, picture: &Picture) {
        let r = self.clip(rect);
        self.fill_black(r);
        if r.is_empty() {
            return;
        }
        let Some((sy, su, sv)) = picture.planes() else {
            return;
        };
        let (tw, th) = fit(picture.w, picture.h, r.w, r.h);
        let ox = r.x + (((r.w - tw) / 2) & !1);
        let oy = r.y + (((r.h - th) / 2) & !1);
        let width = self.width;
        let (dy, du, dv) = self.planes_mut();
        scale_plane(sy, picture.w, picture.h, dy, width, Rect::new(ox, oy, tw, th));
        let chroma = Rect::new(ox / 2, oy / 2, tw / 2, th / 2);
        scale_plane(su, picture.w / 2, picture.h / 2, du, width / 2, chroma);
        scale_plane(sv, picture.w / 2, picture.h / 2, dv, width / 2, chroma);
    }

    fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let luma = (self.width as usize) * (self.height as usize);
        let (y, uv) = self.data.split_at_mut(luma);
        let (u, v) = uv.split_at_mut(luma / 4);
        (y, u, v)
    }
}

/// Fills the rectangle `r` of a plane whose stride is `stride` with `value`.
fn fill_plane(plane: &mut [u8], stride: u32, r: Rect, value: u8) {
    let (stride, x, w) = (stride as usize, r.x as usize, r.w as usize);
    for row in r.y as usize..(r.y + r.h) as usize {
        if let Some(line) = plane.get_mut(row * stride + x..row * stride + x + w) {
            line.fill(value);
        }
    }
}

/// Nearest-neighbour scales the `sw`×`sh` plane `src` into the rectangle `to` of `dst`, whose
/// stride is `dst_stride`.
fn scale_plane(src: &[u8], sw: u32, sh: u32, dst: &mut [u8], dst_stride: u32, to: Rect) {
    if sw == 0 || sh == 0 || to.is_empty() {
        return;
    }
    let (sw, sh, stride) = (sw as usize, sh as usize, dst_stride as usize);
    let (tw, th) = (to.w as usize, to.h as usize);
    let xmap: Vec<usize> = (0..tw).map(|i| ((2 * i + 1) * sw / (2 * tw)).min(sw - 1)).collect();
    for j in 0..th {
        let sy = ((2 * j + 1) * sh / (2 * th)).min(sh - 1);
        let Some(src_row) = src.get(sy * sw..(sy + 1) * sw) else {
            return;
        };
        let start = (to.y as usize + j) * stride + to.x as usize;
        let Some(dst_row) = dst.get_mut(start..start + tw) else {
            return;
        };
        if tw == sw {
            dst_row.copy_from_slice(src_row);
        } else {
            for (d, &sx) in dst_row.iter_mut().zip(&xmap) {
                *d = src_row[sx];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: u32, h: u32, y: u8) -> Picture {
        let luma = (w * h) as usize;
        let mut data = vec![y; luma * 3 / 2];
        data[luma..].fill(90);
        Picture { w, h, data }
    }

    fn luma_at(c: &Canvas, x: u32, y: u32) -> u8 {
        c.bytes()[(y * c.width + x) as usize]
    }

    #[test]
    fn draws_with_black_bars_and_keeps_the_rest() {
        let mut c = Canvas::new(64, 32);
        assert!(c.bytes()[..64 * 32].iter().all(|&v| v == BLACK_Y));
        // A 4:3 picture in a 32x32 cell on the right: 32x24, centred vertically (4 px bars).
        c.draw(Rect::new(32, 0, 32, 32), &solid(320, 240, 200));
        assert_eq!(luma_at(&c, 40, 2), BLACK_Y);
        assert_eq!(luma_at(&c, 40, 4), 200);
        assert_eq!(luma_at(&c, 63, 27), 200);
        assert_eq!(luma_at(&c, 63, 28), BLACK_Y);
        assert_eq!(luma_at(&c, 10, 10), BLACK_Y);
        // Chroma of the drawn area, at (40, 10) → chroma (20, 5).
        let chroma = (64 * 32 + 5 * 32 + 20) as usize;
        assert_eq!(c.bytes()[chroma], 90);
        c.fill_black(Rect::new(32, 0, 32, 32));
        assert_eq!(luma_at(&c, 40, 10), BLACK_Y);
        assert_eq!(c.bytes()[chroma], BLACK_UV);
    }

    #[test]
    fn malformed_pictures_and_rects_do_not_panic() {
        let mut c = Canvas::new(64, 32);
        c.draw(Rect::new(0, 0, 64, 32), &Picture { w: 10, h: 10, data: vec![1, 2, 3] });
        c.draw(Rect::new(60, 30, 100, 100), &solid(2, 2, 50));
        c.draw(Rect::new(1000, 1000, 10, 10), &solid(2, 2, 50));
        c.fill_black(Rect::new(63, 31, 9, 9));
        c.clear();
        assert!(c.bytes()[..64 * 32].iter().all(|&v| v == BLACK_Y));
    }

    #[test]
    fn scaling_is_exact_for_the_same_size_and_nearest_otherwise() {
        let mut pic = solid(4, 2, 0);
        pic.data[..8].copy_from_slice(&[10, 20, 30, 40, 50, 60, 70, 80]);
        let mut c = Canvas::new(8, 4);
        c.draw(Rect::new(0, 0, 4, 2), &pic);
        assert_eq!(&c.bytes()[..4], &[10, 20, 30, 40]);
        assert_eq!(&c.bytes()[8..12], &[50, 60, 70, 80]);
        c.draw(Rect::new(0, 0, 8, 4), &pic);
        assert_eq!(&c.bytes()[..8], &[10, 10, 20, 20, 30, 30, 40, 40]);
        assert_eq!(&c.bytes()[24..32], &[50, 50, 60, 60, 70, 70, 80, 80]);
    }
}
