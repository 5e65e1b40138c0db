import CKernels

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

/// Per output sample: the first input index, the tap count, and fixed-point weights.
struct AxisWeights {
    static let precisionBits = 22   // Pillow: 32 − 8 − 2
    let first: [Int]
    let count: [Int]
    let taps: Int
    let weights: [Int32]

    /// Pillow's precompute_coeffs for outputs `outRange` of a resize of [in0, in1) to `outSize`.
    init(inSize: Int, in0: Double, in1: Double, outSize: Int, outRange: Range<Int>, filter: ResampleFilter) {
        let scale = (in1 - in0) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale
        let taps = Int(support.rounded(.up)) * 2 + 1
        var first: [Int] = [], count: [Int] = []
        var weights = [Int32](repeating: 0, count: outRange.count * taps)
        var k = [Double](repeating: 0, count: taps)
        for (i, xx) in outRange.enumerated() {
            let center = in0 + (Double(xx) + 0.5) * scale
            let xmin = max(Int(center - support + 0.5), 0)   // Int() truncates toward zero, as C's (int)
            let xmax = min(Int(center + support + 0.5), inSize) - xmin
            var total = 0.0
            for x in 0..<xmax {
                k[x] = filter.weight((Double(x + xmin) - center + 0.5) / filterScale)
                total += k[x]
            }
            for x in 0..<max(xmax, 0) {
                let w = total != 0 ? k[x] / total : k[x]
                let scaled = w * Double(1 << Self.precisionBits)
                weights[i * taps + x] = Int32(scaled < 0 ? scaled - 0.5 : scaled + 0.5)
            }
            first.append(xmin)
            count.append(max(xmax, 0))
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

    init(_ image: RGBImage, width outW: Int, height outH: Int, filter: ResampleFilter,
         box: (Double, Double, Double, Double)?, window: (x: Int, y: Int, width: Int, height: Int)?) {
        let (bx0, by0, bx1, by1) = box ?? (0, 0, Double(image.width), Double(image.height))
        let win = window ?? (0, 0, outW, outH)
        precondition(win.x >= 0 && win.y >= 0 && win.x + win.width <= outW && win.y + win.height <= outH, "window outside the output")
        horizontal = AxisWeights(inSize: image.width, in0: bx0, in1: bx1, outSize: outW, outRange: win.x..<(win.x + win.width), filter: filter)
        vertical = AxisWeights(inSize: image.height, in0: by0, in1: by1, outSize: outH, outRange: win.y..<(win.y + win.height), filter: filter)
        rowFirst = vertical.first.min() ?? 0
        midRows = (zip(vertical.first, vertical.count).map { $0 + $1 }.max() ?? 0) - rowFirst
        self.window = win
    }
}

extension RGBImage {
    /// Resizes to `width`×`height` (the region `box` = (x0, y0, x1, y1) of this image, default all
    /// of it) and returns only the output window `window` (default all of it), as
    /// `resize(size, filter, box).crop(window)` would in Pillow, byte for byte.
    public func resampled(width outW: Int, height outH: Int, filter: ResampleFilter = .bicubic,
                          box: (Double, Double, Double, Double)? = nil,
                          window: (x: Int, y: Int, width: Int, height: Int)? = nil) -> RGBImage {
        let plan = ResamplePlan(self, width: outW, height: outH, filter: filter, box: box, window: window)
        let (h, v) = (plan.horizontal, plan.vertical)
        let midBytes = plan.window.width * 3
        let mid = [UInt8](unsafeUninitializedCapacity: plan.midRows * midBytes + 4) { buffer, count in
            pixels.withUnsafeBufferPointer { src in
                h.first.map(Int32.init).withUnsafeBufferPointer { first in
                    h.count.map(Int32.init).withUnsafeBufferPointer { taps in
                        alexnet_resample_horizontal(src.baseAddress! + plan.rowFirst * width * 3, width * 3,
                                                    src.baseAddress! + src.count, Int32(plan.midRows), buffer.baseAddress!, midBytes,
                                                    Int32(plan.window.width), first.baseAddress!, taps.baseAddress!, h.weights, Int32(h.taps))
                    }
                }
            }
            count = plan.midRows * midBytes + 4
        }
        let out = [UInt8](unsafeUninitializedCapacity: plan.window.height * midBytes) { buffer, count in
            mid.withUnsafeBufferPointer { src in
                v.first.map { Int32($0 - plan.rowFirst) }.withUnsafeBufferPointer { first in
                    v.count.map(Int32.init).withUnsafeBufferPointer { taps in
                        alexnet_resample_vertical(src.baseAddress!, midBytes, buffer.baseAddress!, midBytes, Int32(plan.window.height),
                                                  Int32(midBytes), first.baseAddress!, taps.baseAddress!, v.weights, Int32(v.taps))
                    }
                }
            }
            count = plan.window.height * midBytes
        }
        return RGBImage(width: plan.window.width, height: plan.window.height, pixels: out)
    }

    /// `resampled` in plain Swift, loop for loop Pillow's: the reference the SIMD kernels are
    /// tested against.
    public func resampledReference(width outW: Int, height outH: Int, filter: ResampleFilter = .bicubic,
                          box: (Double, Double, Double, Double)? = nil,
                          window: (x: Int, y: Int, width: Int, height: Int)? = nil) -> RGBImage {
        let plan = ResamplePlan(self, width: outW, height: outH, filter: filter, box: box, window: window)
        let (horizontal, vertical, win, rowFirst, midRows) = (plan.horizontal, plan.vertical, plan.window, plan.rowFirst, plan.midRows)
        let midW = win.width
        let half = Int32(1) << Int32(AxisWeights.precisionBits - 1)
        let shift = Int32(AxisWeights.precisionBits)

        // Pass 1, horizontal: input rows rowFirst..<rowEnd → midW columns, 8-bit.
        var mid = [UInt8](repeating: 0, count: midRows * midW * 3)
        pixels.withUnsafeBufferPointer { src in
            mid.withUnsafeMutableBufferPointer { dst in
                horizontal.weights.withUnsafeBufferPointer { kw in
                    for r in 0..<midRows {
                        let row = src.baseAddress! + (rowFirst + r) * width * 3
                        let out = dst.baseAddress! + r * midW * 3
                        for x in 0..<midW {
                            let k = kw.baseAddress! + x * horizontal.taps
                            let p = row + horizontal.first[x] * 3
                            var s0 = half, s1 = half, s2 = half
                            for t in 0..<horizontal.count[x] {
                                let w = k[t]
                                s0 &+= Int32(p[3 * t]) &* w
                                s1 &+= Int32(p[3 * t + 1]) &* w
                                s2 &+= Int32(p[3 * t + 2]) &* w
                            }
                            out[3 * x] = UInt8(clamping: s0 >> shift)
                            out[3 * x + 1] = UInt8(clamping: s1 >> shift)
                            out[3 * x + 2] = UInt8(clamping: s2 >> shift)
                        }
                    }
                }
            }
        }
        // Pass 2, vertical: contiguous rows, which the compiler vectorises.
        let rowBytes = midW * 3
        var result = [UInt8](repeating: 0, count: win.height * rowBytes)
        var acc = [Int32](repeating: 0, count: rowBytes)
        mid.withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                acc.withUnsafeMutableBufferPointer { a in
                    for y in 0..<win.height {
                        for j in 0..<rowBytes { a[j] = half }
                        let k = y * vertical.taps
                        for t in 0..<vertical.count[y] {
                            let w = vertical.weights[k + t]
                            let row = src.baseAddress! + (vertical.first[y] - rowFirst + t) * rowBytes
                            for j in 0..<rowBytes { a[j] &+= Int32(row[j]) &* w }
                        }
                        let out = dst.baseAddress! + y * rowBytes
                        for j in 0..<rowBytes { out[j] = UInt8(clamping: a[j] >> shift) }
                    }
                }
            }
        }
        return RGBImage(width: win.width, height: win.height, pixels: result)
    }

    /// The offline preprocessing of paper section 2 (SPEC section 4): shorter side to `size`
    /// keeping the aspect ratio (antialiased bicubic; not resampled when it already is `size`),
    /// then, with `crop`, the central `size`×`size`.
    ///
    /// An image decoded with DCT scaling passes its source's size and the `scale` it was decoded
    /// at: the output size and crop follow the source, and the resize reads the region of this
    /// image that covers the source exactly.
    public func resizedShorterSide(to size: Int, crop: Bool, sourceWidth: Int? = nil, sourceHeight: Int? = nil,
                                   scale: Double = 1) -> RGBImage {
        let (w, h) = (sourceWidth ?? width, sourceHeight ?? height)
        let (outW, outH) = w <= h ? (size, Int((Double(h) * Double(size) / Double(w)).rounded()))
                                  : (Int((Double(w) * Double(size) / Double(h)).rounded()), size)
        if scale == 1 && shorterSide == size { return crop ? centerCropped(size) : self }
        let box = (0.0, 0.0, Double(w) * scale, Double(h) * scale)
        if !crop { return resampled(width: outW, height: outH, box: box) }
        let cw = min(size, outW), ch = min(size, outH)
        return resampled(width: outW, height: outH, box: box, window: ((outW - cw) / 2, (outH - ch) / 2, cw, ch))
    }
}
