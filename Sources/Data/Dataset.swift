import AlexNetCore
import Foundation

/// The ILSVRC-2012 class table shipped as a package resource (index, synset, name).
public struct ClassTable: Sendable {
    public let synsets: [String]
    public let names: [String]
    public let index: [String: Int]

    public init(synsets: [String], names: [String]) {
        (self.synsets, self.names) = (synsets, names)
        index = Dictionary(uniqueKeysWithValues: synsets.enumerated().map { ($1, $0) })
    }

    /// The 1000 ImageNet classes in index order (the sorted synsets).
    public static let imagenet: ClassTable = {
        guard let url = Bundle.module.url(forResource: "imagenet_classes", withExtension: "tsv"),
              let text = try? String(contentsOf: url, encoding: .utf8) else {
            fatalError("the imagenet_classes.tsv resource is missing from the AlexNet bundle")
        }
        var synsets: [String] = [], names: [String] = []
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: "\t", maxSplits: 2).map(String.init)
            guard fields.count == 3 else { continue }
            synsets.append(fields[1]); names.append(fields[2])
        }
        return ClassTable(synsets: synsets, names: names)
    }()

    public var count: Int { synsets.count }

    /// An ILSVRC-style synset id: "n" and eight digits.
    public static func isSynset(_ s: String) -> Bool {
        s.count == 9 && s.first == "n" && s.dropFirst().allSatisfy(\.isASCIIDigit)
    }
}

private extension Character { var isASCIIDigit: Bool { ("0"..."9").contains(self) } }

/// The two on-disk layouts (docs/DESIGN.md, Data).
public enum DatasetLayout: String, Sendable, CaseIterable {
    /// Hugging Face `ILSVRC/imagenet-1k` as the seed unpacks it: flat `<anything>_<synset>.JPEG`.
    case huggingFace = "hf"
    /// torchvision's ImageFolder: `<class>/<file>`; as torchvision's `make_dataset` walks each
    /// class folder recursively, `<class>/<any folders>/<file>` belongs to `<class>` too.
    case imageFolder = "imagefolder"
}

public struct DatasetError: DescribedError, Sendable {
    public let message: String
    public var description: String { message }
    package init(message: String) { self.message = message }
}

/// One split (train or val): image paths and their labels, in sorted path order.
public struct DatasetSplit: Sendable {
    public let root: String
    public let layout: DatasetLayout
    /// Paths relative to `root`.
    public let files: [String]
    /// The class name (synset or folder) of each file.
    public let classNames: [String]
    public var count: Int { files.count }

    public func path(_ i: Int) -> String { (root as NSString).appendingPathComponent(files[i]) }

    /// Lists a split folder. `layout` nil detects it: more images inside sub-folders than directly
    /// in the split mean ImageFolder, else the flat Hugging Face layout (so a split of one flat
    /// image is Hugging Face). In ImageFolder the class is the top-level folder under the split,
    /// whatever the depth of the file below it (torchvision's rule).
    public static func open(_ root: String, layout: DatasetLayout? = nil) throws -> DatasetSplit {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
            throw DatasetError(message: "\(root): no such folder")
        }
        let (all, _) = try Preprocessor.listImages(under: root)
        guard !all.isEmpty else { throw DatasetError(message: "\(root): empty split (no .jpg, .jpeg or .png files)") }
        let nested = all.filter { $0.contains("/") }
        let chosen = layout ?? (nested.count > all.count - nested.count ? .imageFolder : .huggingFace)
        var files: [String] = [], names: [String] = []
        for rel in all {
            switch chosen {
            case .imageFolder:
                let parts = rel.split(separator: "/")
                guard parts.count >= 2 else {
                    throw DatasetError(message: "\((root as NSString).appendingPathComponent(rel)): not inside a class folder (ImageFolder layout)")
                }
                names.append(String(parts[0]))
            case .huggingFace:
                let stem = ((rel as NSString).lastPathComponent as NSString).deletingPathExtension
                guard let underscore = stem.lastIndex(of: "_") else {
                    throw DatasetError(message: "\((root as NSString).appendingPathComponent(rel)): no _<synset> before the extension (Hugging Face layout)")
                }
                names.append(String(stem[stem.index(after: underscore)...]))
            }
            files.append(rel)
        }
        return DatasetSplit(root: root, layout: chosen, files: files, classNames: names)
    }

    /// Per class name, how many files.
    public var countsByClass: [String: Int] { classNames.reduce(into: [:]) { $0[$1, default: 0] += 1 } }
}

/// Labels for splits: the ImageNet table when every class is a synset, else the sorted class
/// names found in the training split.
public struct LabelMap: Sendable {
    public let classes: [String]
    public let index: [String: Int]
    public let isImageNet: Bool

    /// Builds the map from the training split and checks every split against it.
    public init(train: DatasetSplit, others: [DatasetSplit] = []) throws {
        let found = Set(train.classNames)
        if found.allSatisfy(ClassTable.isSynset) {
            let table = ClassTable.imagenet
            for split in [train] + others {
                if let i = split.classNames.firstIndex(where: { table.index[$0] == nil }) {
                    throw DatasetError(message: "\(split.path(i)): synset '\(split.classNames[i])' is not one of the 1000 ILSVRC-2012 classes")
                }
            }
            (classes, index, isImageNet) = (table.synsets, table.index, true)
        } else {
            let sorted = found.sorted()
            (classes, index, isImageNet) = (sorted, Dictionary(uniqueKeysWithValues: sorted.enumerated().map { ($1, $0) }), false)
        }
        for split in others {
            let missing = Set(split.classNames).subtracting(found)
            if !missing.isEmpty {
                let example = split.classNames.firstIndex { missing.contains($0) }!
                throw DatasetError(message: "\(split.root): \(missing.count) class(es) not in the training split \(train.root), e.g. '\(split.classNames[example])' (\(split.path(example))); labels would not line up (the classic 0.1 % accuracy mistake)")
            }
        }
    }

    public func labels(_ split: DatasetSplit) -> [Int] { split.classNames.map { index[$0]! } }
}

/// A dataset root with `train` and `val` splits in either layout (`train_images`/`val_images` or
/// `train`/`val`).
public struct Dataset: Sendable {
    public let train: DatasetSplit
    public let val: DatasetSplit?
    public let labels: LabelMap

    public static let splitFolders = [("train_images", "val_images"), ("train", "val")]

    /// The folders under `root` that hold (or would hold) its splits: what training reads, and
    /// what no output may be written into.
    public static func splitPaths(_ root: String) -> [String] {
        splitFolders.flatMap { [$0.0, $0.1] }.map { (root as NSString).appendingPathComponent($0) }
    }

    public static func open(_ root: String, layout: DatasetLayout? = nil) throws -> Dataset {
        let fm = FileManager.default
        for (t, v) in splitFolders {
            let trainPath = (root as NSString).appendingPathComponent(t)
            guard fm.fileExists(atPath: trainPath) else { continue }
            let train = try DatasetSplit.open(trainPath, layout: layout)
            let valPath = (root as NSString).appendingPathComponent(v)
            let val = fm.fileExists(atPath: valPath) ? try DatasetSplit.open(valPath, layout: layout) : nil
            return Dataset(train: train, val: val, labels: try LabelMap(train: train, others: val.map { [$0] } ?? []))
        }
        throw DatasetError(message: "\(root): no train_images/ (Hugging Face layout) or train/ (ImageFolder) folder")
    }
}
