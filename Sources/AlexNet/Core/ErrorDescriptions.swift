import Foundation

// Every error type of the library as a LocalizedError whose description is its own: without this,
// `localizedDescription` (which Foundation, and code that formats an error through it, uses) says
// "The operation could not be completed (AlexNet.SafetensorsError error 1)" on Linux instead of the
// message that names the file and the cause. Kept in one place, so that a new error type is added
// beside the others; ErrorDescriptionTests (in VerifyHardeningTests.swift) checks that none is
// missing.

extension ConfigError: LocalizedError { public var errorDescription: String? { description } }
extension ConfigurationError: LocalizedError { public var errorDescription: String? { description } }
extension DatasetError: LocalizedError { public var errorDescription: String? { description } }
extension DNNLError: LocalizedError { public var errorDescription: String? { description } }
extension FileIO.Failure: LocalizedError { public var errorDescription: String? { description } }
extension GoldenFileError: LocalizedError { public var errorDescription: String? { description } }
extension IDXError: LocalizedError { public var errorDescription: String? { description } }
extension ImageError: LocalizedError { public var errorDescription: String? { description } }
extension LayerError: LocalizedError { public var errorDescription: String? { description } }
extension LimitError: LocalizedError { public var errorDescription: String? { description } }
extension NonFiniteOutputError: LocalizedError { public var errorDescription: String? { description } }
extension ParameterError: LocalizedError { public var errorDescription: String? { description } }
extension SafetensorsError: LocalizedError { public var errorDescription: String? { description } }
extension TensorBoardError: LocalizedError { public var errorDescription: String? { description } }
extension TrainingError: LocalizedError { public var errorDescription: String? { description } }
extension AugmentationError: LocalizedError { public var errorDescription: String? { description } }
extension HyperparameterError: LocalizedError { public var errorDescription: String? { description } }
extension LabelError: LocalizedError { public var errorDescription: String? { description } }
extension LayoutError: LocalizedError { public var errorDescription: String? { description } }
extension NamingError: LocalizedError { public var errorDescription: String? { description } }
extension PickleError: LocalizedError { public var errorDescription: String? { description } }
extension ShapeError: LocalizedError { public var errorDescription: String? { description } }
extension ZipArchive.Failure: LocalizedError { public var errorDescription: String? { description } }
extension PyTorchFile.Failure: LocalizedError { public var errorDescription: String? { description } }
extension ONNXError: LocalizedError { public var errorDescription: String? { description } }
extension CommunicationError: LocalizedError { public var errorDescription: String? { description } }
extension PrecisionError: LocalizedError { public var errorDescription: String? { description } }
