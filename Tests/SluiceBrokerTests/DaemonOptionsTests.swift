import Testing

@testable import SluiceBroker

@Suite("sluiced's flags")
struct DaemonOptionsTests {
    /// The options a command line and environment parse to; fails the test on a usage error or `--help`.
    private func parsed(_ arguments: [String], environment: [String: String] = [:]) throws -> DaemonOptions {
        guard case .run(let options) = try DaemonOptions.parse(arguments, environment: environment) else {
            Issue.record("\(arguments) asked for help")
            return DaemonOptions()
        }
        return options
    }

    @Test("--spin takes microseconds, milliseconds or 0; SLUICE_SPIN sets it; the default is 100us")
    func spin() throws {
        #expect(try self.parsed([]).configuration.spin == .microseconds(100))
        #expect(try self.parsed(["--spin", "200us"]).configuration.spin == .microseconds(200))
        #expect(try self.parsed(["--spin=2ms"]).configuration.spin == .milliseconds(2))
        #expect(try self.parsed(["--spin", "0"]).configuration.spin == .zero)
        #expect(try self.parsed([], environment: ["SLUICE_SPIN": "0"]).configuration.spin == .zero)
        #expect(
            try self.parsed(["--spin", "10us"], environment: ["SLUICE_SPIN": "0"]).configuration.spin
                == .microseconds(10)
        )
        #expect(DaemonOptions.help.contains("default: 100us, env: SLUICE_SPIN"))
    }

    @Test("--spin refuses more than 10ms, and values without a unit", arguments: ["11ms", "1s", "50", "fast", "-5us"])
    func spinRefused(value: String) {
        #expect(throws: DaemonOptions.UsageError.self) { try DaemonOptions.parse(["--spin", value], environment: [:]) }
    }

    @Test("a duration that is not whole milliseconds shows in microseconds in --help")
    func durationsInHelp() throws {
        var options = DaemonOptions()
        options.configuration.spin = .microseconds(1_500)
        let flag = try #require(DaemonOptions.flags.first { $0.name == "spin" })
        #expect(flag.defaultValue(options) == "1500us")
        options.configuration.spin = .milliseconds(3)
        #expect(flag.defaultValue(options) == "3ms")
    }
}
