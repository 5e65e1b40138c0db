import AlexNetCore
import Foundation

/// Training augmentation and evaluation crops (paper section 4.1; docs/DESIGN.md, Data and
/// Evaluation). Every random draw for a sample comes from `RandomGenerator(seed:, stream: epoch,
/// index)`, so an epoch's content does not depend on thread count or order of work.
public enum CropMode: String, Sendable, CaseIterable, Codable {
    /// A uniformly random size×size window of the 256×256 image (offsets 0…32 on each axis).
    case paper
    /// The seed's RandomResizedCrop: area U(0.08, 1), log-uniform aspect in [3/4, 4/3], up to 10
    /// tries then the whole (central) image, resized bilinearly.
    case randomResized = "random_resized"
}

public enum MeanMode: String, Sendable, CaseIterable, Codable {
    /// Per-channel mean (the seed's 123.675, 116.28, 103.53 or the computed one).
    case channel
    /// The paper's: the training set's mean image, cropped with the same window.
    case pixel
}

/// What one sample's random draws decided.
public struct AugmentationDraw: Sendable, Equatable {
    /// The source window (in the input image) that becomes the output.
    public var x, y, width, height: Int
    public var mirror: Bool
    /// PCA lighting coefficients αᵢ ~ N(0, σ²).
    public var alphas: [Float]

    public init(x: Int, y: Int, width: Int, height: Int, mirror: Bool, alphas: [Float]) {
        (self.x, self.y, self.width, self.height, self.mirror, self.alphas) = (x, y, width, height, mirror, alphas)
    }
}

/// An augmentation whose settings cannot work together (a mean image smaller than the crop).
public struct AugmentationError: DescribedError, Sendable {
    public let message: String
    public var description: String { message }
}

/// The invariants (`validate()`) are checked where loaders are built; `prepared`, `draw`,
/// `apply` and `evaluationCrops` never read outside the image whatever they are given: an image
/// smaller than the crop is first brought to the crop's size, and windows are clamped into it.
public struct Augmentation: Sendable {
    public var crop: CropMode = .paper
    public var outputSize = 224
    public var mirror = true
    /// σ of the lighting coefficients (paper: 0.1); 0 turns lighting off.
    public var lightingStd: Float = 0.1
    public var mean: MeanMode = .pixel
    public var statistics: DatasetStatistics
    /// Per-channel divisors (0–255 scale) applied after the mean is subtracted, or nil for none
    /// (the paper and the seed divide by nothing). torchvision's weights expect
    /// `torchvisionStd` (x/255 − mean, divided by (0.229, 0.224, 0.225)).
    public var channelStd: [Double]?
    /// torchvision's ImageNet standard deviations on the 0–255 scale; its means × 255 are
    /// `DatasetStatistics.imagenetFallback.channelMean` already (123.675, 116.28, 103.53).
    public static let torchvisionStd = [0.229, 0.224, 0.225].map { $0 * 255 }
    /// The mean image rounded to 8 bits, for resampling with `random_resized` windows.
    private let meanImage8: RGBImage?
    /// The mean image in planar order (3, S, S), so crops read it row by row.
    private let meanPlanar: [Float]

    public init(statistics: DatasetStatistics = .imagenetFallback, crop: CropMode = .paper, mean: MeanMode? = nil) {
        self.statistics = statistics
        self.crop = crop
        // Pixel mean needs a mean image; the published constants only give channel means.
        self.mean = mean ?? (statistics.meanImage.isEmpty ? .channel : .pixel)
        // A mean image of the wrong length is left unused here and refused by `validate()`.
        let n = statistics.size * statistics.size
        let usable = statistics.size > 0 && statistics.meanImage.count == 3 * n
        meanImage8 = usable
            ? RGBImage(width: statistics.size, height: statistics.size, pixels: statistics.meanImage.map { UInt8(clamping: Int($0.rounded())) })
            : nil
        meanPlanar = usable ? (0..<(3 * n)).map { statistics.meanImage[($0 % n) * 3 + $0 / n] } : []
    }

    /// Whether the pixel mean applies: chosen, and a mean image of the right length.
    private var usesMeanImage: Bool { mean == .pixel && !meanPlanar.isEmpty }

    /// Checks that the settings work together: a positive crop size, a mean image of
    /// size × size × 3 values, and, with the pixel mean, a mean image at least as large as the crop
    /// (the crops are windows of the mean image; paper section 2: 224 of 256).
    public func validate() throws {
        guard outputSize > 0 else { throw AugmentationError(message: "crop size \(outputSize) must be positive") }
        let s = statistics.size
        if !statistics.meanImage.isEmpty && (s <= 0 || statistics.meanImage.count != 3 * s * s) {
            throw AugmentationError(message: "mean image of \(statistics.meanImage.count) values for a \(s)×\(s)×3 image")
        }
        if mean == .pixel && !statistics.meanImage.isEmpty && s < outputSize {
            throw AugmentationError(message: "mean image of \(s)×\(s) is smaller than the \(outputSize)×\(outputSize) crop: "
                                    + "the statistics must be computed at the crop size or larger (alexnet stats --size)")
        }
        if let std = channelStd, std.count != 3 || !std.allSatisfy({ $0.isFinite && $0 > 0 }) {
            throw AugmentationError(message: "channel standard deviations \(std) must be 3 finite positive numbers")
        }
    }

    /// Brings a decoded image to the size the crops expect: the mean image's when the pixel mean
    /// is used, and at least the crop's otherwise (shorter side resized and the central square
    /// kept, as preprocessing does). Never smaller than the crop, even if `validate()` fails.
    public func prepared(_ image: RGBImage) -> RGBImage {
        let meanSize = statistics.size
        if mean == .pixel && meanSize > 0 && meanSize >= outputSize {
            return image.width == meanSize && image.height == meanSize ? image : image.resizedShorterSide(to: meanSize, crop: true)
        }
        return fitted(image)
    }

    /// The image itself when both sides are at least the crop's, else its shorter side resized to
    /// the crop and the central square kept (bounded: no enlarged long side), so every window of
    /// the crop's size lies inside.
    func fitted(_ image: RGBImage) -> RGBImage {
        image.width >= outputSize && image.height >= outputSize ? image : image.resizedShorterSide(to: outputSize, crop: true)
    }

    /// The square size evaluation images are brought to before cropping (paper section 2: 256 for
    /// 224 crops): the mean image's when the pixel mean is used, else 256/224 of the crop.
    public var evaluationImageSize: Int {
        mean == .pixel && statistics.size > 0 ? statistics.size : Int((Double(outputSize) * 256 / 224).rounded())
    }

    /// An evaluation sample: the central window, or the ten crops (`TenCrop`) written at
    /// `out + k · stride` for crop k. No lighting, no mirroring beyond ten-crop's own.
    public func evaluationCrops(_ image: RGBImage, tenCrop: Bool, into out: UnsafeMutablePointer<Float>, stride: Int,
                                scratch: inout [Float]) {
        let image = fitted(image)
        if tenCrop {
            TenCrop.apply(image, augmentation: self, into: out, stride: stride, scratch: &scratch)
        } else {
            var center = self
            center.crop = .paper
            let n = outputSize
            center.apply(image, AugmentationDraw(x: TenCrop.centerOffset(image.width, n), y: TenCrop.centerOffset(image.height, n),
                                                 width: n, height: n, mirror: false, alphas: [0, 0, 0]),
                         into: out, scratch: &scratch)
        }
    }

    /// The random decisions for one training sample, in a fixed order: window, mirror, lighting.
    public func draw(width w: Int, height h: Int, rng: inout RandomGenerator) -> AugmentationDraw {
        var d = AugmentationDraw(x: 0, y: 0, width: outputSize, height: outputSize, mirror: false, alphas: [0, 0, 0])
        switch crop {
        case .paper:
            // An image smaller than the crop has one window (it is fitted to the crop in `apply`).
            d.x = Int(rng.next() % UInt64(max(0, w - outputSize) + 1))
            d.y = Int(rng.next() % UInt64(max(0, h - outputSize) + 1))
        case .randomResized:
            (d.x, d.y, d.width, d.height) = Self.randomResizedWindow(width: w, height: h, rng: &rng)
        }
        d.mirror = mirror && rng.uniform() < 0.5
        if lightingStd > 0 { d.alphas = (0..<3).map { _ in rng.normal() * lightingStd } }
        return d
    }

    /// torchvision's RandomResizedCrop.get_params with scale (0.08, 1) and ratio (3/4, 4/3).
    static func randomResizedWindow(width w: Int, height h: Int, rng: inout RandomGenerator) -> (Int, Int, Int, Int) {
        guard w > 0, h > 0 else { return (0, 0, max(w, 0), max(h, 0)) }
        let area = Double(w * h)
        let logLow = log(3.0 / 4.0), logHigh = log(4.0 / 3.0)
        for _ in 0..<10 {
            let target = area * (0.08 + 0.92 * rng.uniformDouble())
            let ratio = exp(logLow + (logHigh - logLow) * rng.uniformDouble())
            let cw = Int((target * ratio).squareRoot().rounded()), ch = Int((target / ratio).squareRoot().rounded())
            if cw > 0, ch > 0, cw <= w, ch <= h {
                return (Int(rng.next() % UInt64(w - cw + 1)), Int(rng.next() % UInt64(h - ch + 1)), cw, ch)
            }
        }
        // Fallback: the central crop with the aspect clamped to the allowed range.
        let inRatio = Double(w) / Double(h)
        var cw = w, ch = h
        if inRatio < 3.0 / 4.0 { ch = Int((Double(w) / (3.0 / 4.0)).rounded()) } else if inRatio > 4.0 / 3.0 { cw = Int((Double(h) * 4.0 / 3.0).rounded()) }
        return ((w - cw) / 2, (h - ch) / 2, cw, ch)
    }

    /// The colour added to every pixel: Σᵢ αᵢ λᵢ pᵢ (paper section 4.1).
    public func lightingShift(_ alphas: [Float]) -> [Float] {
        let lambda = statistics.lightingScales, p = statistics.eigenvectors
        return (0..<3).map { c in
            let shift: Double = (0..<3).reduce(0.0) { $0 + Double(alphas[$1]) * lambda[$1] * p[$1][c] }
            let std: Double = channelStd?[c] ?? 1
            return Float(shift / std)
        }
    }

    /// Writes the sample (3, outputSize, outputSize), planar, into `out`: the window, mirrored if
    /// drawn, plus lighting, minus the mean, on the 0–255 scale.
    public func apply(_ image: RGBImage, _ d: AugmentationDraw, into out: UnsafeMutablePointer<Float>) {
        var scratch: [Float] = []
        apply(image, d, into: out, scratch: &scratch)
    }

    /// `apply` with a caller-kept scratch buffer (one per worker thread), so the loop allocates nothing.
    /// A draw made for another image is clamped into this one; an image smaller than the crop is
    /// first fitted to it (see `fitted`), and an empty one gives zeros.
    public func apply(_ image: RGBImage, _ d: AugmentationDraw, into out: UnsafeMutablePointer<Float>, scratch: inout [Float]) {
        let n = outputSize
        guard n > 0 else { return }
        guard image.width > 0 && image.height > 0 else {
            out.update(repeating: 0, count: 3 * n * n)
            return
        }
        if crop == .randomResized && (d.width != n || d.height != n || d.x != 0 || d.y != 0) {
            // The window, clamped into the image: at least one pixel, never past an edge.
            let x = min(max(d.x, 0), image.width - 1), y = min(max(d.y, 0), image.height - 1)
            let w = min(max(d.width, 1), image.width - x), h = min(max(d.height, 1), image.height - y)
            let box = (Double(x), Double(y), Double(x + w), Double(y + h))
            let resized = image.resampled(width: n, height: n, filter: .bilinear, box: box)
            var meanWindow: [Float]? = nil
            // The mean image's window is the image's only when both have the same size.
            if mean == .pixel, let m8 = meanImage8, m8.width == image.width, m8.height == image.height {
                let m = m8.resampled(width: n, height: n, filter: .bilinear, box: box).pixels
                meanWindow = (0..<(3 * n * n)).map { Float(m[($0 % (n * n)) * 3 + $0 / (n * n)]) }
            }
            planarMinusMean(resized, meanPlanar: meanWindow, into: &scratch)
            Self.crop(scratch, width: n, height: n, x: 0, y: 0, size: n, mirror: d.mirror, shift: lightingShift(d.alphas), into: out)
        } else {
            let image = fitted(image)
            planarMinusMean(image, meanPlanar: nil, into: &scratch)
            Self.crop(scratch, width: image.width, height: image.height, x: min(max(d.x, 0), image.width - n),
                      y: min(max(d.y, 0), image.height - n), size: n, mirror: d.mirror, shift: lightingShift(d.alphas), into: out)
        }
    }

    /// The image as planar floats (3, H, W) minus the mean: `meanPlanar` when given (already
    /// aligned with the image), else the pixel mean image or the channel mean; then divided by
    /// `channelStd` when set.
    func planarMinusMean(_ image: RGBImage, meanPlanar given: [Float]?, into planar: inout [Float]) {
        let plane = image.width * image.height
        if planar.count < 3 * plane { planar = [Float](repeating: 0, count: 3 * plane) }
        let usePixel = given != nil || (usesMeanImage && statistics.size == image.width && statistics.size == image.height)
        let m = given ?? meanPlanar
        let (c0, c1, c2) = (Float(statistics.channelMean[0]), Float(statistics.channelMean[1]), Float(statistics.channelMean[2]))
        image.pixels.withUnsafeBufferPointer { px in
            planar.withUnsafeMutableBufferPointer { out in
                let r = out.baseAddress!, g = r + plane, b = g + plane
                let p = px.baseAddress!
                for i in 0..<plane {
                    r[i] = Float(p[3 * i]); g[i] = Float(p[3 * i + 1]); b[i] = Float(p[3 * i + 2])
                }
                if usePixel {
                    m.withUnsafeBufferPointer { mp in
                        for i in 0..<(3 * plane) { r[i] -= mp[i] }
                    }
                } else {
                    for i in 0..<plane { r[i] -= c0 }
                    for i in 0..<plane { g[i] -= c1 }
                    for i in 0..<plane { b[i] -= c2 }
                }
                if let std = channelStd {
                    for c in 0..<3 {
                        let scale = Float(1 / std[c]), p = r + c * plane
                        for i in 0..<plane { p[i] *= scale }
                    }
                }
            }
        }
    }

    /// Copies the size×size window at (x, y) of a planar (3, height, width) image, mirrored if
    /// asked, adding `shift` per channel: contiguous rows, which the compiler vectorises.
    static func crop(_ planar: [Float], width: Int, height: Int, x: Int, y: Int, size n: Int, mirror: Bool, shift: [Float],
                     into out: UnsafeMutablePointer<Float>) {
        // Once per crop, not per pixel: the callers fit and clamp, this only makes sure of it.
        require(x >= 0 && y >= 0 && x + n <= width && y + n <= height && planar.count >= 3 * width * height,
                "crop \(n)×\(n)+\(x)+\(y) outside \(width)×\(height)")
        planar.withUnsafeBufferPointer { src in
            for c in 0..<3 {
                let add = shift[c]
                for row in 0..<n {
                    let s = src.baseAddress! + (c * height + y + row) * width + x
                    let o = out + (c * n + row) * n
                    if mirror {
                        for i in 0..<n { o[i] = s[n - 1 - i] + add }
                    } else {
                        for i in 0..<n { o[i] = s[i] + add }
                    }
                }
            }
        }
    }
}

/// Ten-crop evaluation (paper section 4.1): the four corners and the centre, then the same five of
/// the mirrored image, as torchvision's `ten_crop`.
public enum TenCrop {
    /// (x, y, mirrored) in the source image for each of the ten windows; a mirrored window is the
    /// mirror image of the source window at (x, y).
    public static func windows(width w: Int, height h: Int, size s: Int) -> [(x: Int, y: Int, mirrored: Bool)] {
        let (cx, cy) = (centerOffset(w, s), centerOffset(h, s))
        let five = [(0, 0), (w - s, 0), (0, h - s), (w - s, h - s), (cx, cy)]
        // A corner of the mirrored image is the mirror of the opposite corner of the source.
        return five.map { ($0.0, $0.1, false) } + five.map { (w - s - $0.0, $0.1, true) }
    }

    /// torchvision's center_crop offset: int(round((length − size) / 2)), Python rounding half to even.
    public static func centerOffset(_ length: Int, _ size: Int) -> Int {
        Int((Double(length - size) / 2).rounded(.toNearestOrEven))
    }

    /// Crops planar (N, C, H, W) images into (10, N, C, s, s), in `windows` order.
    public static func crops(_ images: Tensor, size s: Int) -> Tensor {
        let (n, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        var out = [Float](repeating: 0, count: 10 * n * c * s * s)
        for (k, win) in windows(width: w, height: h, size: s).enumerated() {
            for b in 0..<n { for ch in 0..<c { for row in 0..<s { for col in 0..<s {
                let sx = win.mirrored ? win.x + s - 1 - col : win.x + col
                out[(((k * n + b) * c + ch) * s + row) * s + col] = images.data[((b * c + ch) * h + win.y + row) * w + sx]
            } } } }
        }
        return Tensor(shape: [10, n, c, s, s], data: out)
    }

    /// The ten crops of one image with the evaluation pipeline (no lighting), each (3, s, s) planar,
    /// written at `out + k · stride` for crop k. The mean is subtracted once, then each crop is a copy.
    public static func apply(_ image: RGBImage, augmentation: Augmentation, into out: UnsafeMutablePointer<Float>, stride: Int,
                             scratch: inout [Float]) {
        let s = augmentation.outputSize
        let image = augmentation.fitted(image)
        augmentation.planarMinusMean(image, meanPlanar: nil, into: &scratch)
        for (k, win) in windows(width: image.width, height: image.height, size: s).enumerated() {
            Augmentation.crop(scratch, width: image.width, height: image.height, x: win.x, y: win.y, size: s, mirror: win.mirrored,
                              shift: [0, 0, 0], into: out + k * stride)
        }
    }
}
