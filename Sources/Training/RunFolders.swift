import AlexNetCore
import AlexNetKernels
import Foundation

/// A run's two output folders, `<checkpoint_dir>/<run_name>` and `<log_dir>/<run_name>`, held by
/// one process at a time. A new run never writes into another run's folders: a name whose folders
/// already hold files is refused unless the run resumes, and while a run goes on, a lock file
/// (flock(2), released by the kernel however the process ends) keeps a second process out.
/// Temporary files a killed run left behind are removed once the lock is held.
public final class RunFolders {
    public let checkpoints: String
    public let logs: String
    private let lockDescriptor: Int32

    /// The lock file in the checkpoint folder.
    static let lockFile = ".lock"

    /// Makes and locks the folders of run `name`.
    /// - Parameters:
    ///   - resuming: the run continues from a checkpoint, so its folders may hold files already.
    ///   - rule: what the run reads (its dataset tree, statistics and starting weights): neither
    ///     folder may lie inside the dataset.
    public init(checkpointRoot: String, logRoot: String, name: String, resuming: Bool, rule: OutputRule) throws {
        checkpoints = (checkpointRoot as NSString).appendingPathComponent(name)
        logs = (logRoot as NSString).appendingPathComponent(name)
        try rule.checkFolder(checkpoints, what: "path.checkpoint_dir")
        try rule.checkFolder(logs, what: "path.log_dir")
        if !resuming {
            for folder in [checkpoints, logs] where !Self.isEmptyOrMissing(folder) {
                throw ConfigurationError(source: "path.run_name", key: nil, message:
                    "run '\(name)' already has files in \(FileIO.display(folder)); a new run never writes over another: "
                    + "continue it with --resume \((checkpoints as NSString).appendingPathComponent("last.safetensors")) or choose another path.run_name")
            }
        }
        for folder in [checkpoints, logs] {
            do { try FileIO.makeFolders(folder) } catch {
                throw TrainingError.setup("cannot create \(FileIO.display(folder)): \(error)")
            }
        }
        // The files a run replaces must be none of its inputs, and replaceable.
        for file in ["last.safetensors", "best.safetensors"] {
            try rule.check((checkpoints as NSString).appendingPathComponent(file), what: "path.checkpoint_dir")
        }
        let lockPath = (checkpoints as NSString).appendingPathComponent(Self.lockFile)
        lockDescriptor = FileIO.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lockDescriptor >= 0 else {
            throw TrainingError.setup("cannot create the lock file \(FileIO.display(lockPath)): \(String(cString: strerror(errno)))")
        }
        guard flock(lockDescriptor, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno == EWOULDBLOCK ? "another process is training run '\(name)' now (it holds \(FileIO.display(lockPath)))"
                                              : "cannot lock \(FileIO.display(lockPath)): \(String(cString: strerror(errno)))"
            close(lockDescriptor)
            throw TrainingError.setup(reason)
        }
        Self.removeLeftovers(in: checkpoints)
    }

    deinit { close(lockDescriptor) }

    /// Whether `folder` is missing or holds no files other than hidden ones (a lock file, or a
    /// killed run's temporary files).
    static func isEmptyOrMissing(_ folder: String) -> Bool {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return true }
        return entries.allSatisfy { $0.hasPrefix(".") }
    }

    /// Removes `.NAME.tmp-PID` files, which only a writer that died before renaming them into
    /// place leaves (`FileIO.writeDurably`); with the lock held, no live writer owns one.
    static func removeLeftovers(in folder: String) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
        for name in entries where name.hasPrefix(".") {
            guard let range = name.range(of: ".tmp-", options: .backwards),
                  !name[range.upperBound...].isEmpty, name[range.upperBound...].allSatisfy(\.isNumber) else { continue }
            _ = FileIO.withSystemPath((folder as NSString).appendingPathComponent(name)) { unlink($0) }
        }
    }

    /// A generated run name whose folders do not exist yet.
    public static func freshName(checkpointRoot: String, logRoot: String) -> String {
        for attempt in 0..<1000 {
            let name = RunName.generate() + (attempt < 100 ? "" : "-\(attempt)")
            if [checkpointRoot, logRoot].allSatisfy({ FileIO.status(($0 as NSString).appendingPathComponent(name)) == nil }) { return name }
        }
        return RunName.generate() + "-\(getpid())"
    }
}
