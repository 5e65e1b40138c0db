/// A precondition that holds in every build. The library is compiled with `-Ounchecked` in release
/// (no bounds or overflow checks in its inner loops), which also removes every `precondition`. The checks at API boundaries (sizes, windows, shapes)
/// cost nothing measurable and must not disappear: a wrong crop would otherwise read past a buffer
/// instead of stopping with a message.
@inline(__always)
package func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
             file: StaticString = #file, line: UInt = #line) {
    if !condition() { fatalError(message(), file: file, line: line) }
}
