import AlexNetCore
import Foundation

/// `alexnet preprocess` (paper section 2; docs/DESIGN.md, Data): every image under a source folder,
/// shorter side to `size` (antialiased bicubic, Pillow's filter) and optionally the central crop,
/// written under the same relative path in the destination. A JPEG written as JPEG is resized on
/// its own Y'CbCr planes (see `YCbCrImage`); PNG inputs or outputs, CMYK JPEGs and `resizeInRGB` go
/// through RGB, byte-identical to Pillow's `resize`.
///
/// Safe to interrupt and rerun: each output appears only whole (written unnamed, then linked into
/// place), an output that exists and is complete is skipped, and no existing file is ever written
/// over. The destination records its settings (`preprocess.json`); a rerun with other settings is
/// refused. A bad input is listed with its reason (and in `preprocess-errors.tsv`) and never stops
/// the run; a full disk or read-only file system stops it at once, with the summary.
public struct Preprocessor {
    public enum Format: String, Sendable, CaseIterable { case jpeg, png }

    public struct Options: Sendable {
        public var source: String
        public var destination: String
        public var size = 256
        public var centerCrop = false
        public var format = Format.jpeg
        public var quality = 95
        /// JPEG to JPEG, resize in RGB (Pillow's pixels byte for byte before encoding) instead of
        /// on the JPEG's own Y'CbCr planes (`YCbCrImage`: the same filter, no colour conversions).
        public var resizeInRGB = false
        public var threads = ProcessInfo.processInfo.activeProcessorCount
        public init(source: String, destination: String) { (self.source, self.destination) = (source, destination) }
    }

    public struct Report: Sendable {
        /// Images found (each is written, skipped, failed, or not attempted after a stop).
        public var total = 0
        public var written = 0
        public var skipped = 0
        public var failures: [(path: String, reason: String)] = []
        public var ignored = 0
        /// Folders of the source not entered twice (symlink loops, second links to one folder).
        public var skippedFolders: [String] = []
        /// Set when the run stopped early because writing cannot succeed (a full disk, a
        /// read-only file system): the reason, naming the path.
        public var stoppedBy: String?
        /// Worth knowing but not failures: images large enough to be noted (`ImageLimits.warnPixels`).
        public var notes: [String] = []
        /// Set when `preprocess-errors.tsv` could not be written (the failures are still here).
        public var errorsFileProblem: String?
        public var seconds = 0.0
        public var imagesPerSecond: Double { seconds > 0 ? Double(written + failures.count) / seconds : 0 }
    }

    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]
    public static let errorsFile = "preprocess-errors.tsv"
    public static let manifestFile = "preprocess.json"

    /// The settings a destination was made with, kept in it as `preprocess.json`: a rerun with
    /// other settings would mix images of two kinds under one folder (and report the old ones
    /// "already done"), so it is refused.
    public struct Manifest: Codable, Equatable, Sendable {
        public var tool = "alexnet preprocess"
        public var size: Int
        public var centerCrop: Bool
        public var format: String
        public var quality: Int
        public var resizeInRGB: Bool

        enum CodingKeys: String, CodingKey {
            case tool, size, format, quality
            case centerCrop = "center_crop", resizeInRGB = "resize_in_rgb"
        }

        init(_ o: Options) {
            (size, centerCrop, format, quality, resizeInRGB) = (o.size, o.centerCrop, o.format.rawValue, o.quality, o.resizeInRGB)
        }

        /// The settings that differ, as "name: old → new".
        func differences(from new: Manifest) -> [String] {
            var out: [String] = []
            func compare<T: Equatable>(_ name: String, _ a: T, _ b: T) { if a != b { out.append("\(name) \(a) → \(b)") } }
            compare("size", size, new.size)
            compare("center crop", centerCrop, new.centerCrop)
            compare("format", format, new.format)
            compare("quality", quality, new.quality)
            compare("resize in RGB", resizeInRGB, new.resizeInRGB)
            return out
        }
    }

    public let options: Options
    public init(options: Options) { self.options = options }

    /// Relative paths of the images under `root` (sorted), and how many other files were passed over.
    public static func listImages(under root: String) throws -> (images: [String], ignored: Int) {
        let found = try imageListing(under: root)
        return (found.images, found.ignored)
    }

    /// `listImages`, and the folders not entered twice (see `FileIO.list`).
    public static func imageListing(under root: String, excluding: Set<FileIO.FileID> = []) throws
        -> (images: [String], ignored: Int, skippedFolders: [String]) {
        guard let st = FileIO.status(root), (st.st_mode & S_IFMT) == S_IFDIR else {
            throw ImageError(path: FileIO.display(root), reason: "no such folder")
        }
        let listing = try FileIO.list(root, excluding: excluding)
        var images: [String] = [], ignored = 0
        for rel in listing.files {
            if imageExtensions.contains((rel as NSString).pathExtension.lowercased()) { images.append(rel) } else { ignored += 1 }
        }
        return (images, ignored, listing.skippedFolders)
    }

    /// Where `relative` goes: the same path, the extension following the format (a JPEG keeps its own).
    public func outputPath(for relative: String) -> String {
        let ext = (relative as NSString).pathExtension
        let stem = (relative as NSString).deletingPathExtension
        let newExt: String
        switch options.format {
        case .jpeg: newExt = ["jpg", "jpeg"].contains(ext.lowercased()) ? ext : "jpg"
        case .png: newExt = ext.lowercased() == "png" ? ext : "png"
        }
        return (options.destination as NSString).appendingPathComponent(stem + "." + newExt)
    }

    /// Whether `path` holds a whole JPEG (ends with EOI) or PNG (ends with IEND).
    public static func isComplete(_ path: String) -> Bool {
        let fd = FileIO.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var t = [UInt8](repeating: 0, count: 12)
        let size = lseek(fd, 0, SEEK_END)
        guard size >= 12, pread(fd, &t, 12, size - 12) == 12 else { return false }
        if t[10] == 0xFF && t[11] == 0xD9 { return true }
        return Array(t[4..<12]) == [0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82]
    }

    /// A path with symbolic links, "." and ".." resolved, for a path that may not exist yet: the
    /// deepest existing folder above it resolved by the system, the rest appended.
    static func resolved(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var existing = absolute, rest: [String] = []
        while true {
            if let real = FileIO.withSystemPath(existing, { realpath($0, nil) }) {
                defer { free(real) }
                var out = String(cString: real)
                for part in rest.reversed() where part != "." && !part.isEmpty {
                    if part == ".." { out = (out as NSString).deletingLastPathComponent } else { out += (out.hasSuffix("/") ? "" : "/") + part }
                }
                return out
            }
            guard let slash = existing.lastIndex(of: "/"), existing != "/" else { return absolute }
            rest.append(String(existing[existing.index(after: slash)...]))
            existing = slash == existing.startIndex ? "/" : String(existing[..<slash])
        }
    }

    /// Refuses a destination that is the source, or inside it, or holds it, however either is
    /// spelled (`s` and `s/`, `./s`, an absolute path, a symbolic link): outputs would overwrite
    /// inputs, or be taken for inputs on the next run and resized again (`in/out/out/…`).
    public static func checkSeparate(source: String, destination: String) throws {
        let (src, dst) = (resolved(source), resolved(destination))
        func inside(_ a: String, _ b: String) -> Bool { a == b || a.hasPrefix(b.hasSuffix("/") ? b : b + "/") }
        let sameFile = FileIO.fileID(source).map { $0 == FileIO.fileID(destination) } ?? false
        if sameFile || src == dst {
            throw ImageError(path: FileIO.display(destination), reason: "is the source folder \(FileIO.display(source)) (\(FileIO.display(src))): outputs would overwrite the inputs; choose another destination")
        }
        if inside(dst, src) {
            throw ImageError(path: FileIO.display(destination), reason: "is inside the source folder \(FileIO.display(source)) (\(FileIO.display(dst))): its outputs would be read as inputs on the next run; choose a destination outside it")
        }
        if inside(src, dst) {
            throw ImageError(path: FileIO.display(destination), reason: "holds the source folder \(FileIO.display(source)) (\(FileIO.display(src))): choose a destination outside it")
        }
    }

    /// Makes the destination and checks its manifest: an existing destination must have been made
    /// by `preprocess` with the same settings. Returns the folders it created (to remove again if
    /// the run cannot start).
    private func prepareDestination() throws -> [String] {
        let wanted = Manifest(options)
        return try OwnedFolder.claim(options.destination, manifest: Self.manifestFile, wanted: wanted, owner: "preprocess") {
            $0.differences(from: wanted)
        }
    }

    public func run(progress: Bool = true) throws -> Report {
        try Limits.check(threads: options.threads, flag: "threads")
        try Limits.check(imageSide: options.size, flag: "size")
        try Self.checkSeparate(source: options.source, destination: options.destination)
        try FileIO.checkLength(options.destination)
        // A link inside the source that leads into the destination must not be followed either.
        let exclude = FileIO.fileID(options.destination).map { Set([$0]) } ?? []
        let (listed, ignored, skippedFolders) = try Self.imageListing(under: options.source, excluding: exclude)
        _ = try prepareDestination()
        // Two inputs that differ only in extension (photo.png, photo.jpg) would write one output.
        var owner: [String: String] = [:]
        var collisions: [(path: String, reason: String)] = []
        var kept: [String] = []
        for rel in listed {
            let out = outputPath(for: rel)
            if let first = owner[out] {
                collisions.append(((options.source as NSString).appendingPathComponent(rel),
                                   "its output \(FileIO.display(out)) is also the output of \(FileIO.display(first)); rename one of them"))
            } else {
                owner[out] = rel
                kept.append(rel)
            }
        }
        let images = kept
        let reporter = progress ? ProgressReporter(total: images.count, label: "preprocess") : nil
        let counter = WorkCounter(images.count)
        let shared = Shared()
        let start = Date()
        let options = self.options
        let me = self
        runWorkers(max(1, options.threads)) { worker in
            let codec = ImageCodec()
            let tag = "\(getpid())-\(worker)"
            while !shared.stopped, let i = counter.take() {
                let rel = images[i]
                let src = (options.source as NSString).appendingPathComponent(rel)
                let dst = me.outputPath(for: rel)
                defer { reporter?.advance() }
                if FileIO.status(dst) != nil {
                    if Self.isComplete(dst) {
                        shared.update { $0.skipped += 1 }
                    } else {
                        // Outputs appear only whole (`createAtomically`), so this file is not one.
                        shared.update { $0.failures.append((src, "its output \(FileIO.display(dst)) exists and is not a complete image, so preprocess did not write it; not overwritten")) }
                    }
                    continue
                }
                do {
                    try FileIO.checkLength(dst)
                    try shared.ensureFolder((dst as NSString).deletingLastPathComponent)
                    let decodedPixels = try codec.decode(file: src, minimumSize: options.size, preferPlanes: options.format == .jpeg && !options.resizeInRGB)
                    let warnings = codec.takeWarnings()
                    if !warnings.isEmpty { shared.update { $0.notes += warnings.map(\.description) } }
                    switch decodedPixels {
                    case .planes(let p): try Self.checkOutputSize(p.sourceWidth, p.sourceHeight, options)
                    case .rgb(let d): try Self.checkOutputSize(d.sourceWidth, d.sourceHeight, options)
                    }
                    switch decodedPixels {
                    case .planes(let planes):
                        let image = planes.resizedShorterSide(to: options.size, crop: options.centerCrop)
                        try codec.encodeJPEG(image, quality: options.quality) { try FileIO.createAtomically($0, at: dst, tag: tag) }
                    case .rgb(let decoded):
                        let image = decoded.resizedShorterSide(to: options.size, crop: options.centerCrop)
                        if options.format == .jpeg {
                            try codec.encodeJPEG(image, quality: options.quality) { try FileIO.createAtomically($0, at: dst, tag: tag) }
                        } else {
                            try codec.encodePNG(image).withUnsafeBytes { try FileIO.createAtomically($0, at: dst, tag: tag) }
                        }
                    }
                    shared.update { $0.written += 1 }
                } catch let failure as FileIO.Failure where failure.isFatal {
                    shared.update { if $0.stoppedBy == nil { $0.stoppedBy = failure.description } }
                } catch {
                    let reason = (error as? ImageError)?.reason ?? (error as? FileIO.Failure)?.reason ?? "\(error)"
                    shared.update { $0.failures.append((src, reason)) }
                }
            }
        }
        reporter?.finish()
        shared.removeEmptyFolders()
        var report = shared.report
        report.total = listed.count
        report.ignored = ignored
        report.skippedFolders = skippedFolders
        report.failures += collisions
        report.seconds = Date().timeIntervalSince(start)
        report.failures.sort { $0.path < $1.path }
        let errorsPath = (options.destination as NSString).appendingPathComponent(Self.errorsFile)
        do {
            if report.failures.isEmpty {
                if FileIO.status(errorsPath) != nil { _ = FileIO.withSystemPath(errorsPath) { unlink($0) } }
            } else {
                try FileIO.writeDurably(Data(Self.errorsTable(report.failures).utf8), to: errorsPath)
            }
        } catch {
            report.errorsFileProblem = "\(error)"
        }
        return report
    }

    /// Without `-c` the output keeps the aspect ratio, so a tiny but very long image (100000×1)
    /// would become 25.6 M × 256 pixels: refused, as an input that large is (`ImageLimits`).
    static func checkOutputSize(_ width: Int, _ height: Int, _ options: Options) throws {
        guard !options.centerCrop, width > 0, height > 0 else { return }
        let (short, long) = (min(width, height), max(width, height))
        let (scaled, overflow) = long.multipliedReportingOverflow(by: options.size)
        let longOut = overflow ? Int.max : (scaled + short / 2) / short
        let (pixels, o2) = longOut.multipliedReportingOverflow(by: options.size)
        let cap = ImageLimits().maxPixels
        if overflow || o2 || pixels > cap {
            throw ImageError(path: "", reason: "a \(width)×\(height) image would become \(longOut)×\(options.size) pixels, more than the \(cap) an image may have; use -c (the central crop) or leave it out")
        }
    }

    /// `preprocess-errors.tsv`: a header, then one line per failure, each field escaped by
    /// `FileIO.display` (a tab, newline or backslash in a file name cannot break the table).
    public static func errorsTable(_ failures: [(path: String, reason: String)]) -> String {
        "path\treason\n" + failures.map { "\(FileIO.display($0.path))\t\(FileIO.display($0.reason))\n" }.joined()
    }

    /// What the worker threads share: the tallies and the folders already made.
    private final class Shared: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var report = Report()
        private var folders = Set<String>()
        private var made: [String] = []

        var stopped: Bool { lock.lock(); defer { lock.unlock() }; return report.stoppedBy != nil }

        func update(_ change: (inout Report) -> Void) {
            lock.lock(); defer { lock.unlock() }
            change(&report)
        }

        func ensureFolder(_ folder: String) throws {
            lock.lock(); defer { lock.unlock() }
            if folders.contains(folder) { return }
            made += try FileIO.makeFolders(folder)
            folders.insert(folder)
        }

        /// Folders this run made and left empty (every image in them failed) are removed again.
        func removeEmptyFolders() {
            lock.lock(); defer { lock.unlock() }
            FileIO.removeFolders(made.sorted())
        }
    }
}
