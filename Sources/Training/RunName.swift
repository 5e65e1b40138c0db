/// Two-word run names ("brisk-otter"), as the seed's `coolname.generate_slug(2)`, for runs
/// whose configuration leaves `path.run_name` empty.
public enum RunName {
    static let adjectives = [
        "amber", "bold", "brisk", "calm", "clever", "cosmic", "crimson", "daring", "eager", "fancy", "gentle", "golden",
        "happy", "hidden", "humble", "icy", "jolly", "keen", "lively", "lucky", "mellow", "misty", "nimble", "noble",
        "patient", "polar", "proud", "quiet", "rapid", "rustic", "shiny", "silent", "silver", "steady", "sunny", "swift",
        "tidy", "vivid", "wise", "zesty",
    ]
    static let nouns = [
        "badger", "beaver", "bison", "condor", "coyote", "crane", "dingo", "falcon", "ferret", "gecko", "heron", "ibex",
        "jackal", "koala", "lemur", "lynx", "marmot", "mink", "narwhal", "ocelot", "okapi", "otter", "panda", "pelican",
        "puffin", "quokka", "raven", "salmon", "seal", "stork", "tapir", "toucan", "turtle", "walrus", "weasel", "wombat",
        "yak", "zebra", "finch", "orca",
    ]

    public static func generate<G: RandomNumberGenerator>(using rng: inout G) -> String {
        adjectives.randomElement(using: &rng)! + "-" + nouns.randomElement(using: &rng)!
    }

    public static func generate() -> String {
        var rng = SystemRandomNumberGenerator()
        return generate(using: &rng)
    }
}
