import AlexNetCore
import AlexNetData
import AlexNetKernels
import AlexNetTools
import AlexNetTraining
import Foundation
import XCTest

final class ImageTests: XCTestCase {
    let images = Paths.photos
    func path(_ name: String) -> String { images.appendingPathComponent(name).path }

    func difference(_ a: RGBImage, _ b: RGBImage) -> (mean: Double, max: Int) {
        XCTAssertEqual(a.width, b.width)
        XCTAssertEqual(a.height, b.height)
        var total = 0, worst = 0
        for i in 0..<min(a.pixels.count, b.pixels.count) {
            let d = abs(Int(a.pixels[i]) - Int(b.pixels[i]))
            total += d
            worst = max(worst, d)
        }
        return (Double(total) / Double(max(a.pixels.count, 1)), worst)
    }

    /// The RGB path against Pillow (docs/NUMERICS.md, Image resizing): within a mean absolute
    /// difference of 1.0 per channel value and a maximum of 16 of Pillow's `resize(BICUBIC)` +
    /// central crop.
    func testPreprocessingMatchesPillow() throws {
        let codec = ImageCodec()
        for name in ["astronaut", "chelsea", "coffee", "gray", "rocket", "small"] {
            let source = try codec.decode(file: path("\(name).jpg"))
            let reference = try codec.decode(file: path("\(name).rgb256.png"))
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path("\(name).jpg")))
            for minimumSize in [nil, 256] {
                let ours = try bytes.withUnsafeBytes { try codec.decode($0, path: name, minimumSize: minimumSize) }.resizedShorterSide(to: 256, crop: true)
                let d = difference(ours, reference)
                XCTAssertLessThanOrEqual(d.mean, 1.0, "\(name) (\(source.width)×\(source.height), DCT scaling \(minimumSize != nil)): mean \(d.mean)")
                XCTAssertLessThanOrEqual(d.max, 16, "\(name): max \(d.max)")
            }
        }
        // A PNG photo (a cut of coffee.jpg) goes through the same path.
        let png = try codec.decode(file: path("coffee.png"))
        XCTAssertEqual(png.width, 300)
        XCTAssertEqual(png.height, 200)
    }

    /// The Y'CbCr path (JPEG to JPEG) holds the same bound in the space it works in: its Y plane
    /// against the Y of Pillow's RGB result, and its chroma planes against that result's chroma
    /// averaged over 2×2 (what a 4:2:0 encoder keeps of it), mean ≤ 1.0 and max ≤ 16 per sample.
    /// Cases: the sample photos (4:2:0 and gray) and Pillow's fixtures at an odd size in 4:2:0,
    /// 4:2:2 and 4:4:4; and 4:4:0 and 4:1:1 (which Pillow cannot write), made here from chelsea.jpg
    /// with the RGB path's result, byte for byte Pillow's, as the reference.
    func testPlanesPathMatchesPillowInYCbCr() throws {
        let codec = ImageCodec()
        var cases = try ["astronaut", "chelsea", "coffee", "gray", "rocket", "small"].map {
            (path("\($0).jpg"), try codec.decode(file: path("\($0).rgb256.png")), $0 == "gray" ? (1, 1) : (2, 2)) }
        cases += try [("odd420", (2, 2)), ("sub422", (2, 1)), ("sub444", (1, 1))].map {
            (fixtures.appendingPathComponent("\($0.0).jpg").path, try codec.decode(file: fixtures.appendingPathComponent("\($0.0).pillow256.png").path), $0.1) }
        let cut = try codec.decode(file: path("chelsea.jpg")).cropped(x: 2, y: 1, width: 447, height: 299)
        let folder = try Paths.temporaryDirectory()
        for (subsampling, step) in [(ImageCodec.ChromaSubsampling.s440, (1, 2)), (.s411, (4, 1))] {
            let file = folder.appendingPathComponent("\(subsampling).jpg")
            try codec.encodeJPEG(cut, quality: 92, subsampling: subsampling).write(to: file)
            cases.append((file.path, try codec.decode(file: file.path).resizedShorterSide(to: 256, crop: true), step))
        }
        for (source, reference, chromaStep) in cases {
            let name = (source as NSString).lastPathComponent
            let n = reference.width
            XCTAssertEqual(reference.height, n)
            // JFIF's full-range conversion, in doubles.
            var full = [[Double]](repeating: [Double](repeating: 0, count: n * n), count: 3)
            for i in 0..<(n * n) {
                let (r, g, b) = (Double(reference.pixels[3 * i]), Double(reference.pixels[3 * i + 1]), Double(reference.pixels[3 * i + 2]))
                full[0][i] = 0.299 * r + 0.587 * g + 0.114 * b
                full[1][i] = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
                full[2][i] = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
            }
            for minimumSize in [nil, 256] {
                let planes = try XCTUnwrap(try codec.decodePlanes(file: source, minimumSize: minimumSize), name)
                XCTAssertEqual(planes.planes.count, name == "gray.jpg" ? 1 : 3, name)
                XCTAssertEqual(planes.chromaStep.x, chromaStep.0, name)
                XCTAssertEqual(planes.chromaStep.y, chromaStep.1, name)
                let out = planes.resizedShorterSide(to: 256, crop: true)
                XCTAssertEqual(out.width, n)
                XCTAssertEqual(out.height, n)
                var checks = [(label: "Y", plane: out.luma, expected: { (x: Int, y: Int) in full[0][y * n + x] }, size: n)]
                if let (cb, cr) = out.chroma {
                    for (c, plane) in [(1, cb), (2, cr)] {
                        checks.append((c == 1 ? "Cb" : "Cr", plane, { (x: Int, y: Int) in
                            (full[c][2 * y * n + 2 * x] + full[c][2 * y * n + 2 * x + 1] + full[c][(2 * y + 1) * n + 2 * x]
                             + full[c][(2 * y + 1) * n + 2 * x + 1]) / 4 }, n / 2))
                    }
                }
                for check in checks {
                    XCTAssertEqual(check.plane.width, check.size)
                    var total = 0.0, worst = 0.0
                    for y in 0..<check.size {
                        for x in 0..<check.size {
                            let d = abs(Double(check.plane.bytes[y * check.plane.stride + x]) - check.expected(x, y))
                            total += d
                            worst = max(worst, d)
                        }
                    }
                    let mean = total / Double(check.size * check.size)
                    XCTAssertLessThanOrEqual(mean, 1.0, "\(name) \(check.label), DCT scaling \(minimumSize != nil)")
                    XCTAssertLessThanOrEqual(worst, 16, "\(name) \(check.label), DCT scaling \(minimumSize != nil)")
                }
            }
        }
    }

    /// An image whose shorter side already is the target is not resampled, only cropped; on the
    /// planes path too (Y and, at an even offset, chroma come out as the crop of the input).
    func testImageAtTargetSizeIsOnlyCropped() throws {
        let codec = ImageCodec()
        let image = syntheticImage(width: 300, height: 256, seed: 9)
        XCTAssertEqual(image.resizedShorterSide(to: 256, crop: true), image.cropped(x: 22, y: 0, width: 256, height: 256))
        XCTAssertEqual(image.resizedShorterSide(to: 256, crop: false), image)
        let file = try Paths.temporaryDirectory().appendingPathComponent("at256.jpg")
        try codec.encodeJPEG(image, quality: 90).write(to: file)
        let planes = try XCTUnwrap(try codec.decodePlanes(file: file.path, minimumSize: 256))
        XCTAssertEqual(planes.scale, 1)
        let out = planes.resizedShorterSide(to: 256, crop: true)
        func crop(_ p: Plane, x: Int, width: Int, height: Int) -> [UInt8] {
            (0..<height).flatMap { r in p.bytes[(r * p.stride + x)..<(r * p.stride + x + width)] }
        }
        XCTAssertEqual(out.luma.bytes, crop(planes.planes[0], x: 22, width: 256, height: 256))
        XCTAssertEqual(out.chroma?.cb.bytes, crop(planes.planes[1], x: 11, width: 128, height: 128))
        XCTAssertEqual(out.chroma?.cr.bytes, crop(planes.planes[2], x: 11, width: 128, height: 128))
    }

    /// DCT-domain scaling (for photos of at least twice the target) keeps the Pillow bound: a
    /// 2048-pixel photo made from astronaut.jpg, preprocessed with and without it.
    func testDCTScalingKeepsTheQualityBound() throws {
        let codec = ImageCodec()
        let big = try codec.decode(file: path("astronaut.jpg")).resampled(width: 2048, height: 1536)
        let file = try Paths.temporaryDirectory().appendingPathComponent("big.jpg")
        try codec.encodeJPEG(big, quality: 95).write(to: file)
        let bytes = try Data(contentsOf: file)
        let scaled = try bytes.withUnsafeBytes { try codec.decode($0, path: file.path, minimumSize: 256) }
        XCTAssertEqual(scaled.image.height, 576, "3/8 keeps the shorter side at least twice 256; 1/4 would not")
        XCTAssertEqual(scaled.scale, 3.0 / 8.0)
        let exact = try codec.decode(file: file.path).resizedShorterSide(to: 256, crop: true)
        let d = difference(scaled.resizedShorterSide(to: 256, crop: true), exact)
        XCTAssertLessThanOrEqual(d.mean, 1.0)
        XCTAssertLessThanOrEqual(d.max, 16)
        // The Y'CbCr path scales the same way, and each plane keeps the bound.
        let scaledPlanes = try XCTUnwrap(try codec.decodePlanes(file: file.path, minimumSize: 256))
        XCTAssertEqual(scaledPlanes.scale, 3.0 / 8.0)
        XCTAssertEqual(scaledPlanes.planes[0].height, 576)
        let fast = scaledPlanes.resizedShorterSide(to: 256, crop: true)
        let full = try XCTUnwrap(try codec.decodePlanes(file: file.path, minimumSize: nil)).resizedShorterSide(to: 256, crop: true)
        for (a, b) in [(fast.luma, full.luma), (fast.chroma!.cb, full.chroma!.cb), (fast.chroma!.cr, full.chroma!.cr)] {
            XCTAssertEqual(a.bytes.count, b.bytes.count)
            let diffs = zip(a.bytes, b.bytes).map { abs(Int($0) - Int($1)) }
            XCTAssertLessThanOrEqual(Double(diffs.reduce(0, +)) / Double(diffs.count), 1.0)
            XCTAssertLessThanOrEqual(diffs.max() ?? 0, 16)
        }
    }

    let fixtures = Paths.repository.appendingPathComponent("Tests/Fixtures/images")

    /// CMYK (Adobe, inverted) and progressive JPEGs against Pillow's open + convert("RGB") + resize + crop.
    func testCMYKAndProgressiveJPEGsMatchPillow() throws {
        let codec = ImageCodec()
        for name in ["cmyk", "progressive"] {
            let ours = try codec.decode(file: path("\(name).jpg")).resizedShorterSide(to: 256, crop: true)
            let pillow = try codec.decode(file: fixtures.appendingPathComponent("\(name).pillow256.png").path)
            let d = difference(ours, pillow)
            XCTAssertLessThanOrEqual(d.mean, 1.0, "\(name): mean \(d.mean)")
            XCTAssertLessThanOrEqual(d.max, 16, "\(name): max \(d.max)")
        }
    }

    /// 16-bit RGB and gray, palette, gray+alpha, RGBA and 1-bit PNGs all become Pillow's 8-bit RGB
    /// (16-bit gray: the high byte, as libpng and make_image_fixtures.py; Pillow 13 clips instead).
    func testPNGKindsBecomeRGB() throws {
        let codec = ImageCodec()
        for kind in ["rgb16", "gray16", "palette", "gray_alpha", "rgba", "bilevel"] {
            let ours = try codec.decode(file: fixtures.appendingPathComponent("png_\(kind).png").path)
            let pillow = try codec.decode(file: fixtures.appendingPathComponent("png_\(kind).rgb.png").path)
            XCTAssertEqual(ours.width, 53, kind)
            XCTAssertEqual(ours.height, 37, kind)
            XCTAssertEqual(ours, pillow, "\(kind) differs from Pillow's convert(\"RGB\")")
        }
        // A PNG photo decodes at its size.
        let png = try codec.decode(file: path("coffee.png"))
        XCTAssertEqual([png.width, png.height], [300, 200])
    }

    func testGrayJPEGBecomesThreeEqualChannels() throws {
        let gray = try ImageCodec().decode(file: path("gray.jpg"))
        XCTAssertEqual([gray.width, gray.height], [451, 300])
        for p in stride(from: 0, to: gray.pixels.count, by: 3 * 97) {
            XCTAssertEqual(gray.pixels[p], gray.pixels[p + 1])
            XCTAssertEqual(gray.pixels[p], gray.pixels[p + 2])
        }
    }

    func testSmallImageIsUpscaled() throws {
        let small = try ImageCodec().decode(file: path("small.jpg"))
        XCTAssertEqual([small.width, small.height], [120, 90])
        let out = small.resizedShorterSide(to: 256, crop: false)
        XCTAssertEqual([out.width, out.height], [341, 256])
    }

    func testBadFilesGiveErrorsNamingFileAndReason() throws {
        let codec = ImageCodec()
        let cases = ["truncated.jpg": "truncated", "not_an_image.jpg": "not a JPEG or PNG", "empty.jpg": "empty",
                     "missing.jpg": "cannot open"]
        for (name, reason) in cases {
            XCTAssertThrowsError(try codec.decode(file: path(name)), name) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(path(name)), message)
                XCTAssertTrue(message.contains(reason), "\(name): \(message)")
            }
        }
        let cut = try Paths.temporaryDirectory().appendingPathComponent("cut.png")
        try Data(try Data(contentsOf: URL(fileURLWithPath: path("coffee.png"))).prefix(5000)).write(to: cut)
        XCTAssertThrowsError(try codec.decode(file: cut.path)) { XCTAssertTrue("\($0)".contains("cut.png") && "\($0)".contains("PNG"), "\($0)") }
    }

    func testEncodersRoundTrip() throws {
        let codec = ImageCodec()
        let image = try codec.decode(file: path("chelsea.jpg")).resizedShorterSide(to: 256, crop: true)
        let dir = try Paths.temporaryDirectory()
        let png = dir.appendingPathComponent("x.png"), jpg = dir.appendingPathComponent("x.jpg")
        try codec.encodePNG(image).write(to: png)
        try codec.encodeJPEG(image, quality: 95).write(to: jpg)
        XCTAssertEqual(try codec.decode(file: png.path), image, "PNG is lossless")
        let d = difference(try codec.decode(file: jpg.path), image)
        XCTAssertLessThan(d.mean, 2.0, "quality 95 stays close")
    }
}

final class ResampleKernelTests: XCTestCase {
    /// The SIMD kernels give the same bytes as the plain-Swift reference, for reductions and
    /// enlargements, both filters, boxes and windows, and odd sizes (the tail paths).
    func testKernelsMatchTheReference() {
        let cases: [(w: Int, h: Int, ow: Int, oh: Int, filter: ResampleFilter, box: (Double, Double, Double, Double)?)] = [
            (451, 300, 385, 256, .bicubic, nil), (300, 451, 256, 385, .bicubic, nil), (120, 90, 341, 256, .bicubic, nil),
            (256, 256, 224, 224, .bilinear, (13, 40.5, 200, 230)), (37, 53, 5, 7, .bicubic, nil), (9, 7, 13, 11, .bilinear, nil),
            (1000, 700, 37, 26, .bicubic, nil), (5, 5, 3, 3, .bicubic, (1, 1, 4, 5)),
        ]
        for (i, c) in cases.enumerated() {
            let image = syntheticImage(width: c.w, height: c.h, seed: UInt64(i))
            XCTAssertEqual(image.resampled(width: c.ow, height: c.oh, filter: c.filter, box: c.box),
                           image.resampledReference(width: c.ow, height: c.oh, filter: c.filter, box: c.box), "case \(i)")
            let win = (x: c.ow / 4, y: c.oh / 3, width: c.ow / 2, height: c.oh / 2)
            XCTAssertEqual(image.resampled(width: c.ow, height: c.oh, filter: c.filter, box: c.box, window: win),
                           image.resampledReference(width: c.ow, height: c.oh, filter: c.filter, box: c.box, window: win), "case \(i) window")
        }
    }

    /// The single-channel kernel (the Y'CbCr path) gives the reference's bytes too: on full-range
    /// noise (so every sum's sign and size is exercised), for outputs that fill the 16-byte
    /// windows, reductions too wide for them (output by output), mixed groups, partial groups of
    /// eight, enlargements, boxes and windows.
    func testPlaneKernelMatchesTheReference() {
        let cases: [(w: Int, h: Int, ow: Int, oh: Int, filter: ResampleFilter, box: (Double, Double, Double, Double)?)] = [
            (451, 300, 385, 256, .bicubic, nil), (300, 451, 256, 385, .bicubic, nil), (120, 90, 341, 256, .bicubic, nil),
            (700, 500, 300, 214, .bicubic, nil), (1000, 700, 37, 26, .bicubic, nil), (37, 53, 5, 7, .bicubic, nil),
            (9, 7, 13, 11, .bilinear, nil), (17, 3, 11, 2, .bicubic, nil), (5, 5, 3, 3, .bicubic, (1, 1, 4, 5)),
            (226, 170, 128, 97, .bicubic, (0.5, 0.25, 225.5, 169.75)),
        ]
        var rng = RandomGenerator(seed: 11)
        for (i, c) in cases.enumerated() {
            let plane = Plane(width: c.w, height: c.h, bytes: (0..<(c.w * c.h)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            XCTAssertEqual(plane.resampled(width: c.ow, height: c.oh, filter: c.filter, box: c.box),
                           plane.resampledReference(width: c.ow, height: c.oh, filter: c.filter, box: c.box), "case \(i)")
            let win = (x: c.ow / 4, y: c.oh / 3, width: max(1, c.ow / 2), height: max(1, c.oh / 2))
            XCTAssertEqual(plane.resampled(width: c.ow, height: c.oh, filter: c.filter, box: c.box, window: win),
                           plane.resampledReference(width: c.ow, height: c.oh, filter: c.filter, box: c.box, window: win), "case \(i) window")
        }
    }
}
