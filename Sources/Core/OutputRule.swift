import Foundation

/// The one rule every file the project writes obeys, checked before a command does its work and
/// again by the writers themselves (`FileIO.writeDurably`, `FileIO.createAtomically`):
///
/// - a target that is a device, FIFO, socket or folder is refused (renaming a new file over
///   `/dev/null` would replace the device node itself);
/// - an existing file that is read-only is refused (a rename would replace it silently, even
///   for root);
/// - a target that is one of the command's own inputs is refused, however it is named: files
///   are compared by device and inode, so `x`, `./x` and a symbolic link to `x` are one file;
/// - a target inside a folder tree the command reads (a dataset, a source image folder) is
///   refused, so no output ever replaces or joins its own inputs.
public struct OutputRule: Sendable {
    /// Files the command reads, with the path they were given as (for messages).
    public private(set) var inputs: [(path: String, id: FileIO.FileID)] = []
    /// Folder trees the command reads.
    public private(set) var sourceTrees: [(path: String, id: FileIO.FileID)] = []

    public init(inputs: [String] = [], sourceTrees: [String] = []) {
        for path in inputs where !path.isEmpty { if let id = FileIO.fileID(path) { self.inputs.append((path, id)) } }
        for path in sourceTrees where !path.isEmpty { if let id = FileIO.fileID(path) { self.sourceTrees.append((path, id)) } }
    }

    /// Throws a `FileIO.Failure` naming `path` unless a file may be written there under this
    /// rule, and its folder exists and is writable (checked before a long computation, so that a
    /// bad target fails at once rather than after it); `what` says which output it is ("-o").
    public func check(_ path: String, what: String = "output") throws {
        try FileIO.checkReplaceable(path, what: what)
        if let id = FileIO.fileID(path), let input = inputs.first(where: { $0.id == id }) {
            throw FileIO.Failure(path: FileIO.display(path), reason: input.path == path
                ? "\(what) is also an input of this command; choose another file"
                : "\(what) is the same file as the input \(FileIO.display(input.path)); choose another file")
        }
        let folder = FileIO.folder(of: path)
        guard let st = FileIO.status(folder) else {
            throw FileIO.Failure(path: FileIO.display(path), reason: "\(what): cannot use the folder \(FileIO.display(folder)) (\(String(cString: strerror(errno))))")
        }
        guard st.st_mode & S_IFMT == S_IFDIR else {
            throw FileIO.Failure(path: FileIO.display(path), reason: "\(what): \(FileIO.display(folder)) is not a folder")
        }
        guard FileIO.withSystemPath(folder, { access($0, W_OK) }) == 0 else {
            throw FileIO.Failure(path: FileIO.display(path), reason: "\(what): cannot write into the folder \(FileIO.display(folder)) (\(String(cString: strerror(errno))))")
        }
        try checkOutsideSources(folder, target: path, what: what)
    }

    /// Throws unless `folder`, a folder of outputs that may not exist yet (a run's checkpoint
    /// folder, an import's destination), is outside every source tree and is not an input.
    public func checkFolder(_ folder: String, what: String = "output folder") throws {
        if let st = FileIO.status(folder), st.st_mode & S_IFMT != S_IFDIR {
            throw FileIO.Failure(path: FileIO.display(folder), reason: "\(what) exists and is not a folder")
        }
        // The nearest folder that exists stands for the ones still to be made.
        var existing = folder
        while FileIO.status(existing) == nil, existing != FileIO.folder(of: existing) { existing = FileIO.folder(of: existing) }
        try checkOutsideSources(existing, target: folder, what: what)
    }

    /// Refuses `target` when `folder` (its folder) or any folder above it is a source tree. The
    /// walk goes by identity, up through `..`, so symbolic links resolve to the folders they name.
    private func checkOutsideSources(_ folder: String, target: String, what: String) throws {
        guard !sourceTrees.isEmpty else { return }
        var folder = folder
        var seen = Set<FileIO.FileID>()
        while let id = FileIO.fileID(folder), seen.insert(id).inserted {
            if let tree = sourceTrees.first(where: { $0.id == id }) {
                throw FileIO.Failure(path: FileIO.display(target), reason: "\(what) is inside \(FileIO.display(tree.path)), which this command reads; write it outside that folder")
            }
            folder += "/.."
        }
    }
}

extension FileIO {
    /// The folder a path's file is in ("." for a bare name, "/" at the root).
    public static func folder(of path: String) -> String { split(path).0 }

    /// The part of `OutputRule` every writer checks by itself just before it replaces `path`:
    /// nothing but a missing or writable regular file may be replaced.
    public static func checkReplaceable(_ path: String, what: String = "output") throws {
        let shown = display(path)
        let name = path.split(separator: "/").last.map(String.init) ?? ""
        guard !path.hasSuffix("/"), !name.isEmpty, name != ".", name != ".." else {
            throw Failure(path: shown, reason: "\(what) has no file name")
        }
        guard let st = status(path) else { return }
        if let kind = nonRegularKind(st.st_mode) {
            throw Failure(path: shown, reason: "\(what) is \(kind), not a file that can be replaced")
        }
        // Root passes access(2) for any file, so the permission bits decide.
        if st.st_mode & 0o222 == 0 || withSystemPath(path, { access($0, W_OK) }) != 0 {
            throw Failure(path: shown, reason: "\(what) is read-only; it is not replaced (make it writable or choose another file)")
        }
    }
}

/// A folder of outputs owned by one command (`preprocess`, `import`), marked by a manifest file
/// in it that records the settings its files were made with. A rerun with the same settings
/// continues it; a folder with other settings, or not empty and without the manifest (someone
/// else's data), is refused before anything in it is touched.
public enum OwnedFolder {
    /// Makes `folder` (and missing folders above it) and checks or writes its manifest `file`.
    /// `differences` names the settings in which a found manifest differs from `wanted`. Returns
    /// the folders it created, outermost first, to remove again if the command cannot start.
    @discardableResult
    public static func claim<Manifest: Codable>(_ folder: String, manifest file: String, wanted: Manifest, owner: String,
                                                differences: (Manifest) -> [String]) throws -> [String] {
        let manifestPath = (folder as NSString).appendingPathComponent(file)
        let made = try FileIO.makeFolders(folder)
        do {
            if FileIO.status(manifestPath) != nil {
                var bytes: [UInt8] = []
                let n = try FileIO.read(manifestPath, into: &bytes, limit: 1 << 20)
                guard let found = try? JSONDecoder().decode(Manifest.self, from: Data(bytes[0..<n])) else {
                    throw FileIO.Failure(path: FileIO.display(manifestPath), reason: "is not \(owner)'s manifest (\(file) of another program or version); nothing is overwritten: choose another folder")
                }
                let changed = differences(found)
                if !changed.isEmpty {
                    throw FileIO.Failure(path: FileIO.display(folder), reason: "was made with other settings (\(changed.joined(separator: ", "))); rerun with the settings in \(file), or use another destination")
                }
                return made
            }
            let entries = try FileManager.default.contentsOfDirectory(atPath: folder).filter { !$0.hasPrefix(".") }
            if !entries.isEmpty {
                throw FileIO.Failure(path: FileIO.display(folder), reason: "is not empty and was not made by \(owner) (no \(file)); nothing in it is overwritten: choose a new or empty folder")
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try FileIO.writeDurably(try encoder.encode(wanted) + Data("\n".utf8), to: manifestPath)
            return made
        } catch {
            FileIO.removeFolders(made)
            throw error
        }
    }
}
