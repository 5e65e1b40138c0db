import Foundation

/// Plain POSIX file access for the hot paths (preprocessing, loading): one open, one fstat, reads
/// into a reused buffer, and no Foundation path resolution per file.
public enum FileIO {
    public struct Failure: Error, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    private static func failure(_ path: String, _ what: String) -> Failure {
        Failure(path: path, reason: "\(what) (\(String(cString: strerror(errno))))")
    }

    /// What a file of mode `mode` is when it is not a regular file ("a folder", "a FIFO", …), for
    /// messages that say why it cannot be read or replaced; nil for a regular file.
    public static func nonRegularKind(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "a folder"
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFSOCK: return "a socket"
        case S_IFCHR, S_IFBLK: return "a device"
        case S_IFLNK: return "a symbolic link"
        default: return "an unknown kind of file"
        }
    }

    /// What went wrong, for an error Foundation threw: the system's reason (errno's text) or the
    /// parser's, which Foundation's `localizedDescription` buries under "The operation could not
    /// be completed" on Linux; with `path`, prefixed by the file the error names. The project's
    /// own errors are described by their `description`.
    public static func describe(_ error: Error, path includePath: Bool = false) -> String {
        guard error is CocoaError || error is POSIXError || type(of: error) is NSError.Type else { return "\(error)" }
        let ns = error as NSError
        let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
        var reason: String
        if let underlying = (ns.userInfo[NSUnderlyingErrorKey] as? Error).map({ $0 as NSError }), underlying.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(underlying.code)))
        } else if ns.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(ns.code)))
        } else if let debug = ns.userInfo[NSDebugDescriptionErrorKey] as? String {
            reason = debug
        } else {
            reason = ns.localizedDescription
            for prefix in ["The operation could not be completed. ", "The operation could not be completed"] where reason.hasPrefix(prefix) {
                reason = String(reason.dropFirst(prefix.count))
            }
            if reason.isEmpty { reason = "\(ns.domain) error \(ns.code)" }
        }
        return (includePath ? path.map { "\($0): " } ?? "" : "") + reason
    }

    /// Reads a whole file into `buffer` (grown as needed) and returns its size.
    @discardableResult
    public static func read(_ path: String, into buffer: inout [UInt8]) throws -> Int {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure(path, "cannot open") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw failure(path, "cannot stat") }
        let size = Int(st.st_size)
        if buffer.count < size { buffer = [UInt8](repeating: 0, count: size) }
        var done = 0
        try buffer.withUnsafeMutableBytes { raw in
            while done < size {
                let n = Foundation.read(fd, raw.baseAddress! + done, size - done)
                if n < 0 { if errno == EINTR { continue }; throw failure(path, "cannot read") }
                if n == 0 { break }
                done += n
            }
        }
        return done
    }

    /// All of `bytes` to `fd` (short writes and EINTR retried); errors name `path`.
    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, _ path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw failure(path, "cannot write") }
            done += n
        }
    }

    /// (folder, file name) of a path; "." for a bare name, "/" for a file at the root.
    private static func split(_ path: String) -> (String, String) {
        let slash = path.lastIndex(of: "/")
        return (slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? ".", slash.map { String(path[path.index(after: $0)...]) } ?? path)
    }

    /// Writes `bytes` to `path` so that readers (and a rerun after a crash) never see half a file:
    /// through an unnamed file linked into place where Linux allows, else a temporary name in the
    /// same folder renamed into place. `tag` keeps the temporary names of concurrent writers apart.
    public static func writeAtomically(_ bytes: UnsafeRawBufferPointer, to path: String, tag: String) throws {
        let (folder, name) = split(path)
        if try writeUnnamed(bytes, folder: folder, to: path) { return }
        let tmp = folder + "/." + name + ".tmp-" + tag
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure(path, "cannot create") }
        do { try writeAll(fd, bytes, path) } catch { close(fd); unlink(tmp); throw error }
        guard close(fd) == 0 else { let f = failure(path, "cannot write"); unlink(tmp); throw f }
        guard rename(tmp, path) == 0 else { let f = failure(path, "cannot rename into place"); unlink(tmp); throw f }
    }

    /// Linux's O_TMPFILE: the data goes into an unnamed file that `linkat` then names, one
    /// directory operation instead of create + rename, and nothing is left if the process dies.
    /// Returns false where the file system does not support it (the caller then renames).
    private static func writeUnnamed(_ bytes: UnsafeRawBufferPointer, folder: String, to path: String) throws -> Bool {
        #if os(Linux)
        let oTmpfile: Int32 = 0o20000000 | O_DIRECTORY
        let fd = open(folder, oTmpfile | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        try writeAll(fd, bytes, path)
        let procPath = "/proc/self/fd/\(fd)"
        if linkat(AT_FDCWD, procPath, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0 { return true }
        if errno == EEXIST {   // an old, incomplete output: replace it
            unlink(path)
            if linkat(AT_FDCWD, procPath, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0 { return true }
        }
        if errno == ENOENT || errno == EPERM || errno == EXDEV { return false }   // no /proc: fall back to rename
        throw failure(path, "cannot link into place")
        #else
        return false
        #endif
    }

    /// Writes a file that must survive a crash or power loss whole or not at all (checkpoints):
    /// `body` writes into a temporary file in the same folder, which is flushed to disk (fsync),
    /// renamed over `path` (one atomic step: readers see the old file or the new one), and the
    /// folder is flushed so the rename itself is durable. The previous file stays intact until
    /// the new one is complete. Every file the project saves for keeps goes through here or
    /// through `linkDurably` (bulk outputs that a rerun recreates use `writeAtomically`).
    public static func writeDurably(to path: String, _ body: (_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        let (folder, name) = split(path)
        guard !name.isEmpty else { throw Failure(path: path, reason: "has no file name") }
        let tmp = folder + "/." + name + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure(path, "cannot create \(tmp)") }
        do {
            try body { bytes in try writeAll(fd, bytes, path) }
            guard fsync(fd) == 0 else { throw failure(path, "cannot flush to disk") }
        } catch {
            close(fd); unlink(tmp)
            throw error
        }
        guard close(fd) == 0 else { let f = failure(path, "cannot write"); unlink(tmp); throw f }
        guard rename(tmp, path) == 0 else { let f = failure(path, "cannot rename into place"); unlink(tmp); throw f }
        try syncFolder(folder)
    }

    /// Gives the complete file `source` the second name `path` as durably and atomically as
    /// `writeDurably` writes one (epoch-NNN and best checkpoints): a hard link under a temporary
    /// name renamed over `path`, then the folder flushed, so no second copy of the bytes is
    /// written. Where hard links do not work (another file system, FAT) the bytes are copied
    /// through `writeDurably`.
    public static func linkDurably(_ source: String, to path: String) throws {
        let (folder, name) = split(path)
        guard !name.isEmpty else { throw Failure(path: path, reason: "has no file name") }
        let tmp = folder + "/." + name + ".tmp-\(getpid())"
        unlink(tmp)
        guard link(source, tmp) == 0 else {
            var buffer: [UInt8] = []
            let n = try read(source, into: &buffer)
            try writeDurably(to: path) { write in try buffer.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) } }
            return
        }
        guard rename(tmp, path) == 0 else { let f = failure(path, "cannot rename \(tmp) into place"); unlink(tmp); throw f }
        try syncFolder(folder)
    }

    /// Flushes a folder's entries to disk, so that a rename or link in it survives a power loss.
    private static func syncFolder(_ folder: String) throws {
        let dir = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dir >= 0 else { throw failure(folder, "cannot open the folder to flush it") }
        defer { close(dir) }
        guard fsync(dir) == 0 else { throw failure(folder, "cannot flush the folder to disk") }
    }

    /// Checks, before a long computation, that a file can be saved at `path`: it has a file
    /// name, its folder exists and is writable, and `path` is not a folder, FIFO or device.
    /// (`stats -o somedir` used to fail only after reading every image.)
    public static func checkWritable(_ path: String) throws {
        let (folder, name) = split(path)
        guard !name.isEmpty, name != ".", name != ".." else { throw Failure(path: path, reason: "has no file name") }
        var st = stat()
        if stat(path, &st) == 0, let kind = nonRegularKind(st.st_mode) {
            throw Failure(path: path, reason: "is \(kind), not a file that can be replaced")
        }
        guard stat(folder, &st) == 0 else { throw failure(path, "cannot use the folder \(folder)") }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw Failure(path: path, reason: "\(folder) is not a folder") }
        guard access(folder, W_OK) == 0 else { throw failure(path, "cannot write into the folder \(folder)") }
    }

    public static func writeAtomically(_ data: Data, to path: String, tag: String = "\(getpid())") throws {
        try data.withUnsafeBytes { try writeAtomically($0, to: path, tag: tag) }
    }

    /// Regular files under `root`, as paths relative to it, found with readdir (no stat per file
    /// where the file system reports types). Hidden entries are skipped.
    public static func walk(_ root: String) throws -> [String] {
        var out: [String] = []
        func visit(_ relative: String) throws {
            let full = relative.isEmpty ? root : root + "/" + relative
            guard let dir = opendir(full) else { throw failure(full, "cannot list") }
            defer { closedir(dir) }
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
                }
                if name.hasPrefix(".") { continue }
                let rel = relative.isEmpty ? name : relative + "/" + name
                var type = Int32(entry.pointee.d_type)
                if type == DT_UNKNOWN || type == DT_LNK {
                    var st = stat()
                    guard stat(root + "/" + rel, &st) == 0 else { continue }
                    type = (st.st_mode & S_IFMT) == S_IFDIR ? Int32(DT_DIR) : (st.st_mode & S_IFMT) == S_IFREG ? Int32(DT_REG) : 0
                }
                if type == DT_DIR { try visit(rel) } else if type == DT_REG { out.append(rel) }
            }
        }
        try visit("")
        return out.sorted()
    }
}
