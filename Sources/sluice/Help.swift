/// `--help` texts: the tool's, and one per subcommand.
enum Help {
    static let common = """
        Options for every command:
          --server HOST:PORT   the broker (default 127.0.0.1:7420, or $SLUICE_SERVER)
          --token TOKEN        the shared token, if the broker wants one (or $SLUICE_TOKEN)
          --timeout DURATION   how long to wait for connecting and for requests (default 5s; 250ms, 2m)
          -h, --help           this text

        Exit status: 0 success, 1 runtime error (server unreachable, refused, timeout, not found), 2 bad usage.
        """

    static let tool = """
        sluice: talk to a Sluice broker.

        Usage: sluice COMMAND [OPTIONS] [ARGUMENTS]

        Commands:
          pub SUBJECT [MESSAGE]      publish MESSAGE, or each line of standard input
          sub PATTERN                print each message matching PATTERN (* one token, > the rest)
          push QUEUE [MESSAGE]       put MESSAGE, or each line of standard input, on a work queue
          consume QUEUE              print each message of a work queue, acknowledging it once printed
          set KEY VALUE              store a key's value
          get KEY                    print a key's value (exit 1 if it has none)
          watch KEY                  print a key's value, then each new one
          request SUBJECT MESSAGE    send a request and print the response
          reply SUBJECT [RESPONSE]   answer each request with RESPONSE, or echo it back
          stats                      print the broker's counters
          bench                      measure publish/subscribe throughput and latency

        Run 'sluice COMMAND --help' for a command's options.

        """ + common

    static func text(for command: Invocation.Command) -> String {
        let body: String
        switch command {
        case .pub:
            body = """
                Usage: sluice pub SUBJECT [MESSAGE] [-H key=value]...

                Publishes MESSAGE to SUBJECT and waits for the broker's acknowledgement. Without MESSAGE, every line
                of standard input is published as one message (without waiting for each), until end of input.
                  -H key=value         add a header (repeatable)
                """
        case .sub:
            body = """
                Usage: sluice sub PATTERN [--count N] [--json]

                Prints the payload of each message whose subject matches PATTERN, one per line, as it arrives.
                Messages missed because this subscriber fell behind are reported on standard error with their count.
                Ctrl-C ends it.
                  --count N            exit after N messages
                  --json               one JSON object a line: {"subject":…,"headers":{…},"payload":…};
                                       lag as {"lagged":N}
                """
        case .push:
            body = """
                Usage: sluice push QUEUE [MESSAGE] [-H key=value]...

                Puts MESSAGE on the work queue QUEUE and waits for the broker's acknowledgement. Without MESSAGE,
                every line of standard input is one message. A full queue makes it wait for room.
                  -H key=value         add a header (repeatable)
                """
        case .consume:
            body = """
                Usage: sluice consume QUEUE [--count N] [--json] [--credit N]

                Prints each message taken from QUEUE, one per line, and acknowledges it once printed. Messages not
                acknowledged when it stops go back to the queue. Ctrl-C ends it.
                  --count N            exit after N messages
                  --json               one JSON object a line, with "redelivered"
                  --credit N           messages held unacknowledged at most (default 16)
                """
        case .set:
            body = """
                Usage: sluice set KEY VALUE [-H key=value]...

                Stores VALUE as KEY's value.
                """
        case .get:
            body = """
                Usage: sluice get KEY [--json]

                Prints KEY's value. Exits 1 if the key has no value.
                  --json               {"key":…,"revision":N,"headers":{…},"payload":…}
                """
        case .watch:
            body = """
                Usage: sluice watch KEY [--count N] [--json]

                Prints KEY's current value, then each new value as it changes (a slow reader may skip values, but
                always ends on the newest). Ctrl-C ends it.
                  --count N            exit after N values
                  --json               one JSON object a line, with "revision" (0: the key has no value)
                """
        case .request:
            body = """
                Usage: sluice request SUBJECT MESSAGE [-H key=value]... [--timeout DURATION]

                Sends MESSAGE as a request to whoever serves SUBJECT and prints the response. Exits 1 when nobody
                serves it, the responder leaves, or no response comes within the timeout.
                """
        case .reply:
            body = """
                Usage: sluice reply SUBJECT [RESPONSE] [--count N] [--json]

                Serves SUBJECT: prints each request and answers it with RESPONSE, or with the request itself when
                RESPONSE is not given. Ctrl-C ends it.
                  --count N            exit after answering N requests
                """
        case .stats:
            body = """
                Usage: sluice stats [--json]

                Prints the broker's counters, one 'name value' a line.
                  --json               one {"name":…,"value":N} a line
                """
        case .bench:
            body = """
                Usage: sluice bench [--pub N] [--sub M] [--size BYTES] [--msgs COUNT] [--duration LIMIT]

                Runs N publishing and M subscribing connections on one subject and reports messages per second,
                megabytes per second and delivery latency percentiles. Progress goes to standard error for runs
                longer than about 2 seconds. Stops at COUNT messages or at the time limit, whichever comes first.
                  --pub N              publishing connections (default 1)
                  --sub M              subscribing connections, each receiving every message (default 1)
                  --size BYTES         payload size (default 128; latency needs at least 8)
                  --msgs COUNT         messages published in total (default 100000)
                  --duration LIMIT     time limit (default 60s)
                  --subject SUBJECT    the subject (default bench)
                """
        }
        return body + "\n\n" + common + "\n"
    }
}
