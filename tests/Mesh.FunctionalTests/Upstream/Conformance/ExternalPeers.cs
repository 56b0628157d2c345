// Upstreams nobody here wrote, as child processes on ephemeral loopback ports: Python's http.server, Node's http module and nginx serving files.
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Mesh.Tests;

namespace Mesh.FunctionalTests.Upstream.Conformance;

/// <summary>A server process the suite started; killed (by its own id) on dispose.</summary>
internal sealed class PeerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _directory;

    private PeerProcess(Process process, string directory, int port)
    {
        _process = process;
        _directory = directory;
        Port = port;
    }

    public int Port { get; }

    /// <summary>The file sizes nginx serves as <c>/files/{size}</c>.</summary>
    public static readonly int[] FileSizes = [0, 1, 4096, 5120, 65536, 1024 * 1024];

    /// <summary>The deterministic content of an n-byte body: bytes cycling through 0 to 250, as every peer here makes them.</summary>
    public static byte[] Pattern(int size)
    {
        var bytes = new byte[size];
        for (var i = 0; i < size; i++)
        {
            bytes[i] = (byte)(i % 251);
        }

        return bytes;
    }

    /// <summary>
    /// Python's http.server (BaseHTTPRequestHandler, HTTP/1.1 keep-alive): like most frameworks it
    /// writes the head and the body in separate sends, the pattern that stalled Mesh's client.
    /// </summary>
    public static Task<PeerProcess> StartPythonAsync()
    {
        const string Script = """
            import sys
            from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

            def pattern(n):
                return bytes(i % 251 for i in range(n))

            class Handler(BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"

                def log_message(self, *args):
                    pass

                def send_body(self, status, data, head_only=False):
                    self.send_response(status)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if not head_only:
                        self.wfile.write(data)

                def answer(self, head_only):
                    path = self.path.split("?")[0]
                    if path.startswith("/echo/"):
                        self.send_body(200, self.path.encode("latin-1"), head_only)
                    elif path == "/small":
                        self.send_body(200, b"62 bytes from Python: head and body in two separate writes.\n"[:62].ljust(62, b"."), head_only)
                    elif path.startswith("/size/"):
                        self.send_body(200, pattern(int(path.split("/")[2])), head_only)
                    elif path == "/close":
                        # No length: the body ends when the connection does.
                        self.send_response(200)
                        self.send_header("Connection", "close")
                        self.end_headers()
                        if not head_only:
                            self.wfile.write(pattern(3000))
                        self.close_connection = True
                    elif path.startswith("/chunked/"):
                        self.send_response(200)
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        if not head_only:
                            for i in range(int(path.split("/")[2])):
                                piece = pattern(1000 + i)
                                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                                self.wfile.flush()
                            self.wfile.write(b"0\r\n\r\n")
                    elif path == "/204":
                        self.send_response(204)
                        self.end_headers()
                    else:
                        self.send_body(404, b"not found", head_only)

                def do_GET(self):
                    self.answer(False)

                def do_HEAD(self):
                    self.answer(True)

                def do_POST(self):
                    length = int(self.headers.get("Content-Length") or 0)
                    data = self.rfile.read(length)
                    self.send_body(200, b"posted %d %d" % (len(data), sum(data) % 1000003))

            server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            server.daemon_threads = True
            print(server.server_address[1], flush=True)
            server.serve_forever()
            """;
        return StartScriptAsync(ExternalTools.Require("python3"), "peer.py", Script, ["-u"]);
    }

    /// <summary>Node's http module: Content-Length bodies in one end(), chunked bodies in pieces across event-loop turns.</summary>
    public static Task<PeerProcess> StartNodeAsync()
    {
        const string Script = """
            const http = require('http');
            const pattern = n => { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = i % 251; return b; };
            const server = http.createServer((req, res) => {
              const chunks = [];
              req.on('data', c => chunks.push(c));
              req.on('end', () => {
                const path = req.url.split('?')[0];
                const parts = path.split('/');
                if (req.method === 'POST') {
                  const body = Buffer.concat(chunks);
                  let sum = 0; for (const b of body) sum = (sum + b) % 1000003;
                  const text = `posted ${body.length} ${sum}`;
                  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': Buffer.byteLength(text) });
                  res.end(text);
                } else if (path.startsWith('/echo/')) {
                  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': Buffer.byteLength(req.url, 'latin1') });
                  res.end(req.url, 'latin1');
                } else if (path.startsWith('/size/')) {
                  const body = pattern(+parts[2]);
                  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length });
                  res.end(body);
                } else if (path.startsWith('/chunked/')) {
                  res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
                  let left = +parts[2];
                  const next = () => { if (left-- > 0) { res.write(pattern(700 + left)); setImmediate(next); } else { res.end(); } };
                  next();
                } else if (path === '/204') {
                  res.writeHead(204);
                  res.end();
                } else {
                  res.writeHead(404, { 'Content-Length': 9 });
                  res.end('not found');
                }
              });
            });
            server.keepAliveTimeout = 120000;
            server.listen(0, '127.0.0.1', () => console.log(server.address().port));
            """;
        return StartScriptAsync(ExternalTools.Require("node"), "peer.js", Script, []);
    }

    /// <summary>
    /// nginx (its own temp prefix, config and logs; <c>daemon off</c>) serving <c>/files/{size}</c>
    /// for every size in <see cref="FileSizes"/>, and <c>/echo/...</c> answered with the request URI.
    /// </summary>
    public static async Task<PeerProcess> StartNginxAsync()
    {
        var nginx = ExternalTools.Require("nginx");
        var directory = Directory.CreateTempSubdirectory("mesh-nginx-").FullName;
        Directory.CreateDirectory(Path.Combine(directory, "www", "files"));
        foreach (var size in FileSizes)
        {
            await File.WriteAllBytesAsync(Path.Combine(directory, "www", "files", size.ToString(CultureInfo.InvariantCulture)), Pattern(size));
        }

        // nginx takes no port 0: pick a free port, and pick again if another process took it first.
        for (var attempt = 0; ; attempt++)
        {
            var port = FreePort();
            var config = $$"""
                daemon off;
                master_process off;
                worker_processes 1;
                pid {{directory}}/nginx.pid;
                error_log {{directory}}/error.log warn;
                events { worker_connections 1024; }
                http {
                    access_log off;
                    default_type application/octet-stream;
                    client_body_temp_path {{directory}}/client_body;
                    proxy_temp_path {{directory}}/proxy;
                    fastcgi_temp_path {{directory}}/fastcgi;
                    uwsgi_temp_path {{directory}}/uwsgi;
                    scgi_temp_path {{directory}}/scgi;
                    keepalive_requests 1000000;
                    keepalive_timeout 120s;
                    server {
                        listen 127.0.0.1:{{port}};
                        root {{directory}}/www;
                        location /echo/ { return 200 "$request_uri"; }
                    }
                }
                """;
            var path = Path.Combine(directory, "nginx.conf");
            await File.WriteAllTextAsync(path, config);
            var process = Start(nginx, ["-p", directory, "-c", path, "-e", Path.Combine(directory, "error.log")], directory);
            if (await WaitForPortAsync(process, port))
            {
                return new PeerProcess(process, directory, port);
            }

            var log = File.Exists(Path.Combine(directory, "error.log")) ? await File.ReadAllTextAsync(Path.Combine(directory, "error.log")) : "";
            Stop(process);
            if (attempt == 4)
            {
                throw new InvalidOperationException($"nginx did not start on 127.0.0.1:{port}: {log}");
            }
        }
    }

    public ValueTask DisposeAsync()
    {
        Stop(_process);
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }

        return ValueTask.CompletedTask;
    }

    private static async Task<PeerProcess> StartScriptAsync(string program, string fileName, string script, string[] arguments)
    {
        var directory = Directory.CreateTempSubdirectory("mesh-peer-").FullName;
        var path = Path.Combine(directory, fileName);
        await File.WriteAllTextAsync(path, script);
        var process = Start(program, [.. arguments, path], directory);
        var line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
        if (!int.TryParse(line, CultureInfo.InvariantCulture, out var port))
        {
            var error = await process.StandardError.ReadToEndAsync();
            Stop(process);
            throw new InvalidOperationException($"{program} {fileName} did not print its port (got '{line}'): {error}");
        }

        return new PeerProcess(process, directory, port);
    }

    private static Process Start(string program, string[] arguments, string directory)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = directory,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        return Process.Start(start)!;
    }

    private static void Stop(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
        }

        process.Dispose();
    }

    private static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    /// <summary>
    /// True once nginx answers on <paramref name="port"/> (a probe request whose answer names nginx,
    /// so another program that took the port is not mistaken for it); false if it exits first or 30 s pass.
    /// </summary>
    private static async Task<bool> WaitForPortAsync(Process process, int port)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline && !process.HasExited)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
                await socket.SendAsync("GET /echo/probe HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"u8.ToArray(), SocketFlags.None);
                var buffer = new byte[4096];
                var read = await socket.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(TimeSpan.FromSeconds(10));
                return System.Text.Encoding.Latin1.GetString(buffer, 0, read).Contains("Server: nginx", StringComparison.Ordinal);
            }
            catch (SocketException)
            {
                // Not listening yet: nginx binds within milliseconds of starting, and gives no other signal; poll briefly.
                await Task.Delay(20);
            }
        }

        return false;
    }
}
