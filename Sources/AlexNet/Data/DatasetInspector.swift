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
        public var problems: [String] = []
        /// Worth knowing but not wrong (files that are not images, such as preprocess-errors.tsv).
        public var notes: [String] = []
        public var isImageNet = false
    }

    /// Inspects `root` (a dataset with train/val splits, or one split folder). With `decode`, every
    /// image is decoded and the first `maxProblems` failures are listed.
    public static func inspect(_ root: String, layout: DatasetLayout? = nil, decode: Bool = false, maxProblems: Int = 20,
                               threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> Report {
        var report = Report()
        var splits: [(String, DatasetSplit)] = []
        let fm = FileManager.default
        let named = Dataset.splitFolders.first { fm.fileExists(atPath: (root as NSString).appendingPathComponent($0.0)) }
        let candidates = named.map { [$0.0, $0.1] } ?? []
        for folder in candidates where fm.fileExists(atPath: (root as NSString).appendingPathComponent(folder)) {
            do { splits.append((folder, try DatasetSplit.open((root as NSString).appendingPathComponent(folder), layout: layout))) } catch {
                report.problems.append("\(error)")
            }
        }
        if named == nil {
            do { splits.append(((root as NSString).lastPathComponent, try DatasetSplit.open(root, layout: layout))) } catch {
                report.problems.append("\(error)")
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
                report.problems.append("\(error)")
            }
        }
        if decode {
            for (_, split) in splits {
                let failures = Failures(limit: maxProblems - report.problems.count)
                let counter = WorkCounter(split.count)
                runWorkers(threads) { _ in
                    let codec = ImageCodec()
                    while !failures.full, let i = counter.take() {
                        do { _ = try codec.decode(file: split.path(i)) } catch { failures.add("\(error)") }
                    }
                }
                report.problems += failures.sorted
            }
        }
        report.problems = Array(report.problems.prefix(maxProblems))
        return report
    }

    private final class Failures: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [String] = []
        private let limit: Int
        init(limit: Int) { self.limit = max(0, limit) }
        var full: Bool { lock.lock(); defer { lock.unlock() }; return list.count >= limit }
        func add(_ s: String) { lock.lock(); if list.count < limit { list.append(s) }; lock.unlock() }
        var sorted: [String] { lock.lock(); defer { lock.unlock() }; return list.sorted() }
    }
}
