import AlexNetCore
import CResample

/// Antialiased resampling exactly as Pillow's `Image.resize` does it (libImaging/Resample.c):
/// separable filters whose support widens with the reduction factor, a horizontal pass into an
/// 8-bit intermediate then a vertical pass, weights in 22-bit fixed point, rounding to nearest.
/// Only the requested output window is computed, so resize-then-crop costs what the crop keeps.
public enum ResampleFilter: Sendable {
    /// Keys' cubic with a = −0.5, support 2 (Pillow's BICUBIC).
    case bicubic
    /// Triangle, support 1 (Pillow's BILINEAR).
    case bilinear

    var support: Double { self == .bicubic ? 2 : 1 }

    func weight(_ x: Double) -> Double {
        let x = abs(x)
        switch self {
        case .bicubic:
            let a = -0.5
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        case .bilinear:
            return x < 1 ? 1 - x : 0
        }
    }
}

/// Per output sample: the first input index, the tap count, and fixed-point weights (Int32, as
/// the C kernels take them).
struct AxisWeights {
    static let precisionBits = 22   // Pillow: 32 − 8 − 2
    let first: [Int32]
    let count: [Int32]
    let taps: Int
    let weights: [Int32]

    /// Pillow's precompute_coeffs for outputs `outRange` of a resize of [in0, in1) to `outSize`,
    /// operation for operation (it multiplies by 1/filterscale rather than dividing).
    init(inSize: Int, in0: Double, in1: Double, outSize: Int, outRange: Range<Int>, filter: ResampleFilter) {
        let scale = (in1 - in0) / Double(outSize)
        let filterScale = max(scale, 1)
        let ss = 1.0 / filterScale
        let support = filter.support * filterScale
        let taps = Int(support.rounded(.up)) * 2 + 1
        let n = outRange.count
        var first = [Int32](repeating: 0, count: n), count = [Int32](repeating: 0, count: n)
        var weights = [Int32](repeating: 0, count: n * taps)
        let k = UnsafeMutableBufferPointer<Double>.allocate(capacity: taps)
        defer { k.deallocate() }
        weights.withUnsafeMutableBufferPointer { weights in
            for i in 0..<n {
                let center = in0 + (Double(outRange.lowerBound + i) + 0.5) * scale
                let xmin = max(Int(center - support + 0.5), 0)   // Int() truncates toward zero, as C's (int)
                let xmax = max(min(Int(center + support + 0.5), inSize) - xmin, 0)
                var total = 0.0
                for x in 0..<xmax {
                    k[x] = filter.weight((Double(x + xmin) - center + 0.5) * ss)
                    total += k[x]
                }
                for x in 0..<xmax {
                    let scaled = (total != 0 ? k[x] / total : k[x]) * Double(1 << Self.precisionBits)
                    weights[i * taps + x] = Int32(scaled < 0 ? scaled - 0.5 : scaled + 0.5)
                }
                (first[i], count[i]) = (Int32(xmin), Int32(xmax))
            }
        }
        (self.first, self.count, self.taps, self.weights) = (first, count, taps, weights)
    }
}

/// The weights and extents of one resize: shared by the SIMD path and the reference.
struct ResamplePlan {
    let horizontal: AxisWeights
    let vertical: AxisWeights
    let window: (x: Int, y: Int, width: Int, height: Int)
    /// The input rows the vertical pass reads: rowFirst ..< rowFirst + midRows.
    let rowFirst: Int
    let midRows: Int

    init(width: Int, height: Int, outWidth outW: Int, outHeight outH: Int, filter: ResampleFilter,
         box: (Double, Double, Double, Double)?, window: (x: Int, y: Int, width: Int, height: Int)?) {
        let (bx0, by0, bx1, by1) = box ?? (0, 0, Double(width), Double(height))
        let win = window ?? (0, 0, outW, outH)
        require(win.x >= 0 && win.y >= 0 && win.x + win.width <= outW && win.y + win.height <= outH, "window outside the output")
        horizontal = AxisWeights(inSize: width, in0: bx0, in1: bx1, outSize: outW, outRange: win.x..<(win.x + win.width), filter: filter)
        vertical = AxisWeights(inSize: height, in0: by0, in1: by1, outSize: outH, outRange: win.y..<(win.y + win.height), filter: filter)
        rowFirst = Int(vertical.first.min() ?? 0)
        midRows = Int(zip(vertical.first, vertical.count).map { $0 + $1 }.max() ?? 0) - rowFirst
        self.window = win
    }

    /// Runs the plan on `channels`-interleaved pixels (3: RGB; 1: one plane) whose rows are
    /// `stride` bytes apart, with the C kernels: the output window's pixels, row-major.
    func run(_ pixels: [UInt8], stride: Int, channels: Int) -> [UInt8] {
        let (h, v) = (horizontal, vertical)
        let midBytes = window.width * channels
        let mid = [UInt8](unsafeUninitializedCapacity: midRows * midBytes + 4) { buffer, count in
            pixels.withUnsafeBufferPointer { src in
                h.first.withUnsafeBufferPointer { first in
                    h.count.withUnsafeBufferPointer { taps in
                        let kernel = channels == 3 ? alexnet_resample_horizontal : alexnet_resample_plane_horizontal
                        kernel(src.baseAddress! + rowFirst * stride, stride, src.baseAddress! + src.count,
                               Int32(midRows), buffer.baseAddress!, midBytes, Int32(window.width), first.baseAddress!,
                               taps.baseAddress!, h.weights, Int32(h.taps))
                    }
                }
            }
            count = midRows * midBytes + 4
        }
        return [UInt8](unsafeUninitializedCapacity: window.height * midBytes) { buffer, count in
            mid.withUnsafeBufferPointer { src in
                v.first.map { $0 - Int32(rowFirst) }.withUnsafeBufferPointer { first in
                    v.count.withUnsafeBufferPointer { taps in
                        alexnet_resample_vertical(src.baseAddress!, midBytes, buffer.baseAddress!, midBytes, Int32(window.height),
                                                  Int32(midBytes), first.baseAddress!, taps.baseAddress!, v.weights, Int32(v.taps))
                    }
                }
            }
            count = window.height * midBytes
        }
    }

    /// `run` in plain Swift, loop for loop Pillow's: the reference the SIMD kernels are tested against.
    func runReference(_ pixels: [UInt8], stride: Int, channels: Int) -> [UInt8] {
        let half = Int32(1) << Int32(AxisWeights.precisionBits - 1)
        let shift = Int32(AxisWeights.precisionBits)
        // Pass 1, horizontal: input rows rowFirst..<rowFirst + midRows → window.width samples, 8-bit.
        let rowBytes = window.width * channels
        var mid = [UInt8](repeating: 0, count: midRows * rowBytes)
        var sums = [Int32](repeating: 0, count: channels)
        for r in 0..<midRows {
            let row = (rowFirst + r) * stride
            for x in 0..<window.width {
                for c in 0..<channels { sums[c] = half }
                for t in 0..<Int(horizontal.count[x]) {
                    let w = horizontal.weights[x * horizontal.taps + t]
                    for c in 0..<channels { sums[c] &+= Int32(pixels[row + (Int(horizontal.first[x]) + t) * channels + c]) &* w }
                }
                for c in 0..<channels { mid[r * rowBytes + x * channels + c] = UInt8(clamping: sums[c] >> shift) }
            }
        }
        // Pass 2, vertical.
        var result = [UInt8](repeating: 0, count: window.height * rowBytes)
        var acc = [Int32](repeating: 0, count: rowBytes)
        for y in 0..<window.height {
            for j in 0..<rowBytes { acc[j] = half }
            for t in 0..<Int(vertical.count[y]) {
                let w = vertical.weights[y * vertical.taps + t]
                let row = (Int(vertical.first[y]) - rowFirst + t) * rowBytes
                for j in 0..<rowBytes { acc[j] &+= Int32(mid[row + j]) &* w }
            }
            for j in 0..<rowBytes { result[y * rowBytes + j] = UInt8(clamping: acc[j] >> shift) }
        }
        return result
    }
}

extension RGBImage {
    /// Resizes to `width`×`height` (the region `box` = (x0, y0, x1, y1) of this image, default all
    /// of it) and returns only the output window `window` (default all of it), as
    /// `resize(size, filter, box).crop(window)` would in Pillow, byte for byte.
    public func resampled(width outW: Int, height outH: Int, filter: ResampleFilter = .bicubic,
                          box: (Double, Double, Double, Double)? = nil,
                          window: (x: Int, y: Int, width: Int, height: Int)? = nil) -> RGBImage {
        let plan = ResamplePlan(width: width, height: height, outWidth: outW, outHeight: outH, filter: filter, box: box, window: window)
        return RGBImage(width: plan.window.width, height: plan.window.height, pixels: plan.run(pixels, stride: width * 3, channels: 3))
    }

    /// `resampled` in plain Swift: the reference the SIMD kernels are tested against.
    public func resampledReference(width outW: Int, height outH: Int, filter: ResampleFilter = .bicubic,
                                   box: (Double, Double, Double, Double)? = nil,
                                   window: (x: Int, y: Int, width: Int, height: Int)? = nil) -> RGBImage {
        let plan = ResamplePlan(width: width, height: height, outWidth: outW, outHeight: outH, filter: filter, box: box, window: window)
        return RGBImage(width: plan.window.width, height: plan.window.height, pixels: plan.runReference(pixels, stride: width * 3, channels: 3))
    }

    /// The offline preprocessing of paper section 2: shorter side to `size` keeping the aspect
    /// ratio (antialiased bicubic; not resampled when it already is `size`), then, with `crop`, the
    /// central `size`×`size`.
    ///
    /// An image decoded with DCT scaling passes its source's size and the `scale` it was decoded
    /// at: the output size and crop follow the source, and the resize reads the region of this
    /// image that covers the source exactly.
    public func resizedShorterSide(to size: Int, crop: Bool, sourceWidth: Int? = nil, sourceHeight: Int? = nil,
                                   scale: Double = 1) -> RGBImage {
        let g = ShorterSideResize(sourceWidth: sourceWidth ?? width, sourceHeight: sourceHeight ?? height, scale: scale,
                                  size: size, crop: crop)
        if scale == 1 && shorterSide == size { return crop ? centerCropped(size) : self }
        return resampled(width: g.outWidth, height: g.outHeight, box: g.box, window: g.window)
    }
}

/// The geometry of "shorter side to `size`, then optionally the central crop" for a source of
/// `sourceWidth`×`sourceHeight` decoded at `scale`: Pillow's output size, the box of the decoded
/// image that covers the source, and the output window kept.
struct ShorterSideResize {
    let outWidth: Int
    let outHeight: Int
    let box: (Double, Double, Double, Double)
    let window: (x: Int, y: Int, width: Int, height: Int)

    init(sourceWidth w: Int, sourceHeight h: Int, scale: Double, size: Int, crop: Bool) {
        (outWidth, outHeight) = w <= h ? (size, Int((Double(h) * Double(size) / Double(w)).rounded()))
                                       : (Int((Double(w) * Double(size) / Double(h)).rounded()), size)
        box = (0, 0, Double(w) * scale, Double(h) * scale)
        let (cw, ch) = crop ? (min(size, outWidth), min(size, outHeight)) : (outWidth, outHeight)
        window = ((outWidth - cw) / 2, (outHeight - ch) / 2, cw, ch)
    }

    /// Input pixels per output pixel, across and down.
    var step: (x: Double, y: Double) { ((box.2 - box.0) / Double(outWidth), (box.3 - box.1) / Double(outHeight)) }
}

extension Plane {
    /// `RGBImage.resampled` for one channel: the same filter, weights and rounding.
    public func resampled(width outW: Int, height outH: Int, filter: ResampleFilter = .bicubic,
                          box: (Double, Double, Double, Double)? = nil,
                          window: (x: Int, y: Int, width: Int, height: Int)? = nil) -> Plane {
        resampled(ResamplePlan(width: width, height: height, outWidth: outW, outHeight: outH, filter: filter, box: box, window: window))
    }

    /// Runs a plan made for this plane's size (one plan serves both chroma planes).
    func resampled(_ plan: ResamplePlan) -> Plane {
        Plane(width: plan.window.width, height: plan.window.height, bytes: plan.run(bytes, stride: stride, channels: 1))
    }

    /// `resampled` in plain Swift: the reference the SIMD kernel is tested against.
    public func resampledReference(width outW: Int, height outH: Int, filter: ResampleFilter = .bicubic,
                                   box: (Double, Double, Double, Double)? = nil,
                                   window: (x: Int, y: Int, width: Int, height: Int)? = nil) -> Plane {
        let plan = ResamplePlan(width: width, height: height, outWidth: outW, outHeight: outH, filter: filter, box: box, window: window)
        return Plane(width: plan.window.width, height: plan.window.height, bytes: plan.runReference(bytes, stride: stride, channels: 1))
    }
}
