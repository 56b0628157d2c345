// mesh-rateload URL RATE SECONDS [CONNECTIONS]: HTTP/1.1 GETs at a fixed total rate; prints latency percentiles.
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace Mesh.RateLoad;

/// <summary>
/// An open-loop load generator: each keep-alive connection sends on a fixed schedule, and a
/// request's latency counts from when it was due, not from when it was sent, so a slow response
/// that delays the next send is charged to the requests it delayed (no coordinated omission).
/// One thread per connection with blocking sockets keeps the timing free of the thread pool.
/// </summary>
internal static partial class Program
{
    public static int Main(string[] args)
    {
        if (args.Length < 3 || !Uri.TryCreate(args[0], UriKind.Absolute, out var uri) || uri.Scheme != "http"
            || !int.TryParse(args[1], CultureInfo.InvariantCulture, out var rate) || rate <= 0
            || !int.TryParse(args[2], CultureInfo.InvariantCulture, out var seconds) || seconds <= 0)
        {
            Console.Error.WriteLine("usage: mesh-rateload http://HOST:PORT/PATH RATE_PER_SECOND SECONDS [CONNECTIONS=4]");
            return 2;
        }

        var connections = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 4;
        var request = Encoding.ASCII.GetBytes($"GET {uri.PathAndQuery} HTTP/1.1\r\nHost: {uri.Authority}\r\n\r\n");
        var interval = (double)Stopwatch.Frequency * connections / rate;
        var perConnection = (int)((long)rate * seconds / connections);
        var latencies = new long[connections][];
        var errors = 0;
        var start = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 10;
        var threads = new Thread[connections];
        for (var c = 0; c < connections; c++)
        {
            var index = c;
            latencies[index] = new long[perConnection];
            threads[index] = new Thread(() =>
            {
                try
                {
                    // Connections are staggered evenly over one interval.
                    Run(uri, request, start + (long)(interval * index / connections), interval, latencies[index]);
                }
                catch (Exception ex) when (ex is SocketException or IOException)
                {
                    Console.Error.WriteLine($"connection {index}: {ex.Message}");
                    Interlocked.Increment(ref errors);
                }
            }) { IsBackground = true };
            threads[index].Start();
        }

        foreach (var thread in threads)
        {
            thread.Join();
        }

        var all = latencies.SelectMany(l => l).Where(l => l > 0).Order().ToArray();
        if (all.Length == 0 || errors > 0)
        {
            Console.Error.WriteLine($"{errors} connection(s) failed; {all.Length} responses");
            return 1;
        }

        double Us(double q) => all[Math.Min(all.Length - 1, (int)(q * all.Length))] * 1e6 / Stopwatch.Frequency;
        var elapsed = (double)seconds;
        Console.WriteLine(FormattableString.Invariant(
            $"requests {all.Length} rate {all.Length / elapsed:F0}/s p50 {Us(0.50):F0}us p90 {Us(0.90):F0}us p99 {Us(0.99):F0}us p99.9 {Us(0.999):F0}us max {Us(1.0):F0}us"));
        return 0;
    }

    private static void Run(Uri uri, byte[] request, long firstDue, double interval, long[] latencies)
    {
        _ = SetTimerSlack(PrTimerSlack, 1, 0, 0, 0);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        socket.Connect(uri.Host, uri.Port);
        var buffer = new byte[16 * 1024];
        for (var i = 0; i < latencies.Length; i++)
        {
            var due = firstDue + (long)(interval * i);
            WaitUntil(due);
            socket.Send(request);
            ReadResponse(socket, buffer);
            latencies[i] = Stopwatch.GetTimestamp() - due;
        }
    }

    // Sleeps until the due time with nanosleep and a 1 ns timer slack: Thread.Sleep has 1 ms steps,
    // and spinning would take the core from the backend the load shares it with.
    private static unsafe void WaitUntil(long due)
    {
        var ts = stackalloc long[2];
        while (true)
        {
            var left = (due - Stopwatch.GetTimestamp()) * 1_000_000_000 / Stopwatch.Frequency;
            if (left <= 0)
            {
                return;
            }

            ts[0] = left / 1_000_000_000;
            ts[1] = left % 1_000_000_000;
            _ = NanoSleep(ts, null);
        }
    }

    // Reads one response with a Content-Length body (what the benchmark backends send).
    private static void ReadResponse(Socket socket, byte[] buffer)
    {
        var filled = 0;
        var headerEnd = -1;
        var contentLength = 0;
        while (true)
        {
            var read = socket.Receive(buffer, filled, buffer.Length - filled, SocketFlags.None);
            if (read == 0)
            {
                throw new IOException("the server closed the connection");
            }

            filled += read;
            if (headerEnd < 0)
            {
                headerEnd = buffer.AsSpan(0, filled).IndexOf("\r\n\r\n"u8);
                if (headerEnd < 0)
                {
                    continue;
                }

                var head = Encoding.ASCII.GetString(buffer, 0, headerEnd);
                var at = head.IndexOf("\r\ncontent-length:", StringComparison.OrdinalIgnoreCase);
                if (at < 0)
                {
                    throw new IOException("no Content-Length in the response");
                }

                var valueStart = at + "\r\ncontent-length:".Length;
                var valueEnd = head.IndexOf("\r\n", valueStart, StringComparison.Ordinal);
                contentLength = int.Parse(head.AsSpan(valueStart, (valueEnd < 0 ? head.Length : valueEnd) - valueStart).Trim(), CultureInfo.InvariantCulture);
            }

            if (filled >= headerEnd + 4 + contentLength)
            {
                return;
            }
        }
    }

    private const int PrTimerSlack = 29;

    [LibraryImport("libc", EntryPoint = "nanosleep")]
    private static unsafe partial int NanoSleep(long* request, long* remaining);

    [LibraryImport("libc", EntryPoint = "prctl")]
    private static partial int SetTimerSlack(int option, nuint value, nuint a3, nuint a4, nuint a5);
}
