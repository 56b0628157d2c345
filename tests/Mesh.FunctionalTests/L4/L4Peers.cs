// Real TCP, TLS and UDP peers on loopback for the L4 end-to-end tests.
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Mesh.FunctionalTests.Infrastructure;

namespace Mesh.FunctionalTests.L4;

/// <summary>A TCP backend: echoes "name:" + each chunk, or runs a custom handler per connection.</summary>
internal sealed class TcpPeer : IAsyncDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private int _accepted;

    public TcpPeer(string name, Func<Socket, CancellationToken, Task>? handler = null, int backlog = 128)
    {
        Name = name;
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(backlog);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _accepting = AcceptAsync(handler ?? EchoAsync);
    }

    public string Name { get; }

    public int Port { get; }

    public int Accepted => Volatile.Read(ref _accepted);

    public object Endpoint => new { address = "127.0.0.1", port = Port };

    private async Task AcceptAsync(Func<Socket, CancellationToken, Task> handler)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket connection;
            try
            {
                connection = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            Interlocked.Increment(ref _accepted);
            _ = Task.Run(async () =>
            {
                using (connection)
                {
                    try
                    {
                        await handler(connection, _stop.Token);
                    }
                    catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
                    {
                    }
                }
            });
        }
    }

    private async Task EchoAsync(Socket connection, CancellationToken cancellationToken)
    {
        var buffer = new byte[64 * 1024];
        var prefix = Encoding.ASCII.GetBytes(Name + ":");
        while (true)
        {
            var read = await connection.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
            if (read == 0)
            {
                connection.Shutdown(SocketShutdown.Send);
                return;
            }

            await connection.SendAsync(prefix, SocketFlags.None, cancellationToken);
            await connection.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        await _accepting;
        _stop.Dispose();
    }
}

/// <summary>Socket helpers with deadlines.</summary>
internal static class Net
{
    public static async Task<Socket> ConnectAsync(IPEndPoint target, IPAddress? from = null)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (from is not null)
        {
            socket.Bind(new IPEndPoint(from, 0));
        }

        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        await socket.ConnectAsync(target, deadline.Token);
        return socket;
    }

    /// <summary>Sends <paramref name="text"/> and reads one reply chunk.</summary>
    public static async Task<string> AskAsync(Socket socket, string text)
    {
        await socket.SendAsync(Encoding.ASCII.GetBytes(text), SocketFlags.None);
        var buffer = new byte[4096];
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        var total = 0;
        // The echo sends "name:" and the payload in two writes; read until the payload is in.
        while (true)
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory(total), SocketFlags.None, deadline.Token);
            if (read == 0)
            {
                return Encoding.ASCII.GetString(buffer, 0, total);
            }

            total += read;
            var reply = Encoding.ASCII.GetString(buffer, 0, total);
            if (reply.EndsWith(text, StringComparison.Ordinal))
            {
                return reply;
            }
        }
    }

    /// <summary>Reads until the peer closes; returns the bytes, or throws the socket error.</summary>
    public static async Task<byte[]> ReadToEndAsync(Socket socket)
    {
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        using var all = new MemoryStream();
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, deadline.Token);
            if (read == 0)
            {
                return all.ToArray();
            }

            all.Write(buffer, 0, read);
        }
    }

    public static string BackendOf(string reply) => reply[..reply.IndexOf(':', StringComparison.Ordinal)];
}

/// <summary>A TLS backend holding its own self-signed certificate; answers each connection with its name.</summary>
internal sealed class TlsPeer : IAsyncDisposable
{
    private readonly X509Certificate2 _certificate;
    private readonly TcpPeer _tcp;

    public TlsPeer(string name, string subject)
    {
        Name = name;
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={subject}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(subject);
        request.CertificateExtensions.Add(san.Build());
        using var created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        _certificate = X509CertificateLoader.LoadPkcs12(created.Export(X509ContentType.Pfx), null);
        _tcp = new TcpPeer(name, ServeAsync);
    }

    public string Name { get; }

    public int Port => _tcp.Port;

    public int Accepted => _tcp.Accepted;

    public object Endpoint => _tcp.Endpoint;

    private async Task ServeAsync(Socket connection, CancellationToken cancellationToken)
    {
        await using var stream = new SslStream(new NetworkStream(connection, ownsSocket: false));
        await stream.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = _certificate }, cancellationToken);
        await stream.WriteAsync(Encoding.ASCII.GetBytes(Name + "\n"), cancellationToken);
        await stream.FlushAsync(cancellationToken);
    }

    /// <summary>Connects through <paramref name="target"/> with SNI <paramref name="serverName"/>; returns the certificate subject and the first line.</summary>
    public static async Task<(string Subject, string Line)> HandshakeAsync(IPEndPoint target, string serverName, List<SslApplicationProtocol>? alpn = null)
    {
        using var socket = await Net.ConnectAsync(target);
        await using var stream = new SslStream(new NetworkStream(socket, ownsSocket: false));
        string? subject = null;
        using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
        await stream.AuthenticateAsClientAsync(
            new SslClientAuthenticationOptions
            {
                TargetHost = serverName,
                ApplicationProtocols = alpn,
                // Self-signed test backends: record which certificate came back; trust only a named one.
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                {
                    subject = certificate?.Subject;
                    return subject is not null && subject.StartsWith("CN=", StringComparison.Ordinal);
                },
            },
            deadline.Token);
        var buffer = new byte[256];
        var read = await stream.ReadAsync(buffer, deadline.Token);
        return (subject ?? "", Encoding.ASCII.GetString(buffer, 0, read).Trim());
    }

    public async ValueTask DisposeAsync()
    {
        await _tcp.DisposeAsync();
        _certificate.Dispose();
    }
}
