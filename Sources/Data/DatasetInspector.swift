import AlexNetCore
import Foundation

/// `alexnet dataset-info`: what a dataset folder holds and the first problems in it.
public struct DatasetInspector {
    public struct SplitSummary: Sendable {
        public let name: String
        public let root: String
        public let layout: DatasetLayout
        public let count: Int
        public let classCounts: [(name: String, count: Int)]
    }

    public struct Report: Sendable {
        public var splits: [SplitSummary] = []
        /// The first problems found (at most `maxProblems`), in a fixed order: the dataset's
        /// structure, then each split's undecodable files by path.
        public var problems: [String] = []
        /// Every problem found, listed or not: a run that lists none may still have found some.
        public var problemCount = 0
        /// Worth knowing but not wrong (files that are not images, such as preprocess-errors.tsv;
        /// images decoded above Pillow's MAX_IMAGE_PIXELS).
        public var notes: [String] = []
        public var isImageNet = false
    }

    /// Inspects `root` (a dataset with train/val splits, or one split folder). With `decode`, every
    /// image is decoded; every failure is counted and the first `maxProblems` problems are listed.
    /// A root holding only a validation split (val/ or val_images/) is a dataset without a training
    /// split: that is a problem, and the validation split is still inspected.
    public static func inspect(_ root: String, layout: DatasetLayout? = nil, decode: Bool = false, maxProblems: Int = 20,
                               threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> Report {
        var report = Report()
        var problems: [String] = []
        var splits: [(String, DatasetSplit)] = []
        let fm = FileManager.default
        func inRoot(_ folder: String) -> String { (root as NSString).appendingPathComponent(folder) }
        let candidates: [String]?
        if let named = Dataset.splitFolders.first(where: { fm.fileExists(atPath: inRoot($0.0)) }) {
            candidates = [named.0, named.1]
        } else if let val = Dataset.splitFolders.map(\.1).first(where: { fm.fileExists(atPath: inRoot($0)) }) {
            // Taken as a split folder, val/ would be one class named "val".
            problems.append("\(root): no training split (\(Dataset.splitFolders.map { $0.0 + "/" }.joined(separator: " or "))) beside \(val)/; "
                            + "\(val)/ is inspected alone")
            candidates = [val]
        } else {
            candidates = nil
        }
        for folder in candidates ?? [] where fm.fileExists(atPath: inRoot(folder)) {
            do { splits.append((folder, try DatasetSplit.open(inRoot(folder), layout: layout))) } catch {
                problems.append("\(error)")
            }
        }
        if candidates == nil {
            do { splits.append(((root as NSString).lastPathComponent, try DatasetSplit.open(root, layout: layout))) } catch {
                problems.append("\(error)")
            }
        }
        for (name, split) in splits {
            let counts = split.countsByClass.sorted { $0.key < $1.key }.map { (name: $0.key, count: $0.value) }
            report.splits.append(SplitSummary(name: name, root: split.root, layout: split.layout, count: split.count, classCounts: counts))
            if let (_, ignored) = try? Preprocessor.listImages(under: split.root), ignored > 0 {
                report.notes.append("\(split.root): \(ignored) file(s) without a .jpg/.jpeg/.png extension are ignored")
            }
        }
        if let train = splits.first?.1 {
            do {
                let map = try LabelMap(train: train, others: splits.dropFirst().map(\.1))
                report.isImageNet = map.isImageNet
            } catch {
                problems.append("\(error)")
            }
        }
        let limit = max(0, maxProblems)
        report.problemCount = problems.count
        report.problems = Array(problems.prefix(limit))
        if decode {
            for (_, split) in splits {
                // Every file is decoded, even with nothing left to list: the count must be whole.
                let failures = Failures(keep: limit - report.problems.count)
                let counter = WorkCounter(split.count)
                runWorkers(threads) { _ in
                    let codec = ImageCodec()
                    while let i = counter.take() {
                        do { _ = try codec.decode(file: split.path(i)) } catch { failures.add(i, "\(error)") }
                        failures.note(codec.takeWarnings().map(\.description))
                    }
                }
                report.problemCount += failures.count
                report.problems += failures.kept
                report.notes += failures.notes.sorted()
            }
        }
        return report
    }

    /// Decoding failures of one split, shared by the workers: all counted, the `keep` with the
    /// lowest file indices kept (so the list does not depend on thread timing).
    private final class Failures: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [(index: Int, message: String)] = []
        private var total = 0
        private var warnings: [String] = []
        private let keep: Int
        init(keep: Int) { self.keep = max(0, keep) }

        func add(_ index: Int, _ message: String) {
            lock.lock(); defer { lock.unlock() }
            total += 1
            guard keep > 0, list.count < keep || index < list[list.count - 1].index else { return }
            // Binary search: `list` is sorted by index, and a large --max-problems keeps it long.
            var (low, high) = (0, list.count)
            while low < high {
                let mid = (low + high) / 2
                if list[mid].index < index { low = mid + 1 } else { high = mid }
            }
            list.insert((index, message), at: low)
            if list.count > keep { list.removeLast() }
        }

        func note(_ messages: [String]) {
            guard !messages.isEmpty else { return }
            lock.lock(); warnings += messages; lock.unlock()
        }

        var count: Int { lock.lock(); defer { lock.unlock() }; return total }
        var kept: [String] { lock.lock(); defer { lock.unlock() }; return list.map(\.message) }
        var notes: [String] { lock.lock(); defer { lock.unlock() }; return warnings }
    }
}
