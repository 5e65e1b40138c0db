import AlexNet
import Foundation
import XCTest

final class ImageTests: XCTestCase {
    let images = Paths.shared.appendingPathComponent("images")
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

    /// SPEC section 4 / data issue item 2: within a mean absolute difference of 1.0 per channel
    /// value and a maximum of 16 of Pillow's `resize(BICUBIC)` + central crop.
    func testPreprocessingMatchesPillow() throws {
        let codec = ImageCodec()
        for name in ["astronaut", "chelsea", "coffee", "gray", "rocket", "small"] {
            let source = try codec.decode(file: path("\(name).jpg"))
            let reference = try codec.decode(file: path("\(name).rgb256.png"))
            for minimumSize in [nil, 256] {
                let ours = try codec.decode(file: path("\(name).jpg"), minimumSize: minimumSize).resizedShorterSide(to: 256, crop: true)
                let d = difference(ours, reference)
                XCTAssertLessThanOrEqual(d.mean, 1.0, "\(name) (\(source.width)×\(source.height), DCT scaling \(minimumSize != nil)): mean \(d.mean)")
                XCTAssertLessThanOrEqual(d.max, 16, "\(name): max \(d.max)")
            }
        }
        // The PNG twin of coffee.jpg goes through the same path.
        let png = try codec.decode(file: path("coffee.png"))
        XCTAssertEqual(png.width, 600)
        XCTAssertEqual(png.height, 400)
    }

    /// DCT-domain scaling (for photos of at least twice the target) keeps the Pillow bound: a
    /// 2048-pixel photo made from astronaut.jpg, preprocessed with and without it.
    func testDCTScalingKeepsTheQualityBound() throws {
        let codec = ImageCodec()
        let big = try codec.decode(file: path("astronaut.jpg")).resampled(width: 2048, height: 1536)
        let file = try Paths.temporaryDirectory().appendingPathComponent("big.jpg")
        try codec.encodeJPEG(big, quality: 95).write(to: file)
        let scaled = try codec.decode(file: file.path, minimumSize: 256)
        XCTAssertEqual(scaled.height, 768, "1/2 keeps the shorter side at least twice 256; 1/4 would not")
        let exact = try codec.decode(file: file.path).resizedShorterSide(to: 256, crop: true)
        let d = difference(scaled.resizedShorterSide(to: 256, crop: true), exact)
        XCTAssertLessThanOrEqual(d.mean, 1.0)
        XCTAssertLessThanOrEqual(d.max, 16)
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

    /// 16-bit RGB and gray, palette, gray+alpha, RGBA and 1-bit PNGs all become Pillow's 8-bit RGB.
    func testPNGKindsBecomeRGB() throws {
        let codec = ImageCodec()
        for kind in ["rgb16", "gray16", "palette", "gray_alpha", "rgba", "bilevel"] {
            let ours = try codec.decode(file: fixtures.appendingPathComponent("png_\(kind).png").path)
            let pillow = try codec.decode(file: fixtures.appendingPathComponent("png_\(kind).rgb.png").path)
            XCTAssertEqual(ours.width, 53, kind)
            XCTAssertEqual(ours.height, 37, kind)
            XCTAssertEqual(ours, pillow, "\(kind) differs from Pillow's convert(\"RGB\")")
        }
        // A PNG photo resizes like its JPEG twin would.
        let png = try codec.decode(file: path("coffee.png"))
        XCTAssertEqual([png.width, png.height], [600, 400])
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
                     "missing.jpg": "cannot read"]
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
