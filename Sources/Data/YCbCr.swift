/// The JPEG-to-JPEG path of `preprocess`: resize a JPEG's own Y'CbCr planes and encode them, with
/// no colour conversion and no chroma upsampling on either side.
///
/// Why: a JPEG stores Y'CbCr with chroma at half resolution (4:2:0), and so does the JPEG written.
/// Converting to RGB means upsampling chroma, converting, resizing three full-resolution channels,
/// converting back and downsampling chroma again. Resizing the planes where they are does the same
/// antialiased bicubic (Pillow's filter, weights and rounding) on 1.5 channels' worth of samples
/// instead of 3, and skips the four conversions. Y is resized exactly as Pillow resizes a channel;
/// each chroma plane is resized straight to the output's half-resolution chroma grid (centred
/// siting, as JFIF), which is what the encoder would otherwise average down to. The RGB path
/// (`RGBImage.resizedShorterSide`) stays for PNG output, CMYK and `--exact-rgb`.
public struct YCbCrImage: Sendable {
    public var width: Int
    public var height: Int
    /// Y, padded to even sizes for a 4:2:0 encoder.
    public var luma: Plane
    /// Cb and Cr at ⌈width/2⌉×⌈height/2⌉; nil for a grayscale image.
    public var chroma: (cb: Plane, cr: Plane)?
}

extension ImageCodec.DecodedPlanes {
    /// Shorter side to `size` and optional central crop, on the planes: the geometry, output size
    /// and crop window are exactly those of the RGB path.
    public func resizedShorterSide(to size: Int, crop: Bool) -> YCbCrImage {
        let g = ShorterSideResize(sourceWidth: sourceWidth, sourceHeight: sourceHeight, scale: scale, size: size, crop: crop)
        let (w, h) = (g.window.width, g.window.height)
        let y = planes[0].resampled(width: g.outWidth, height: g.outHeight, box: g.box, window: g.window)
        guard planes.count == 3 else { return YCbCrImage(width: w, height: h, luma: y, chroma: nil) }
        // Output chroma sample j covers output pixels window.x + 2j, +1: in the source's chroma
        // plane that is [(window.x + 2j)·step / f, (window.x + 2j + 2)·step / f).
        let (cw, ch) = ((w + 1) / 2, (h + 1) / 2)
        let (fx, fy) = (Double(chromaStep.x), Double(chromaStep.y))
        let (x0, y0) = (Double(g.window.x) * g.step.x / fx, Double(g.window.y) * g.step.y / fy)
        let box = (x0, y0, x0 + Double(cw) * 2 * g.step.x / fx, y0 + Double(ch) * 2 * g.step.y / fy)
        // Cb and Cr have one size and one box: one set of weights serves both.
        let plan = ResamplePlan(width: planes[1].width, height: planes[1].height, outWidth: cw, outHeight: ch, filter: .bicubic,
                                box: box, window: nil)
        let (cb, cr) = (planes[1].resampled(plan), planes[2].resampled(plan))
        return YCbCrImage(width: w, height: h, luma: y.paddedToEven(), chroma: (cb, cr))
    }
}

extension Plane {
    /// This plane with an odd width or height made even by repeating the last column or row
    /// (a 4:2:0 encoder reads whole 2×2 blocks).
    func paddedToEven() -> Plane {
        let (pw, ph) = ((width + 1) & ~1, (height + 1) & ~1)
        if pw == width && ph == height { return self }
        var out = [UInt8](repeating: 0, count: pw * ph)
        for r in 0..<ph {
            let from = min(r, height - 1) * stride
            for x in 0..<pw { out[r * pw + x] = bytes[from + min(x, width - 1)] }
        }
        return Plane(width: pw, height: ph, bytes: out)
    }
}
