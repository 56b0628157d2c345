// Real TCP, TLS and UDP peers on loopback for the L4 end-to-end tests.
using System.Collections.Concurrent;
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
    private readonly ConcurrentBag<Task> _handlers = [];
    private readonly Task _accepting;
    private int _accepted;

    public TcpPeer(string name, Func<Socket, CancellationToken, Task>? handler = null)
    {
        Name = name;
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(512);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _accepting = AcceptAsync(handler ?? EchoAsync);
    }

    public string Name { get; }

    public int Port { get; }

    /// <summary>Connections this peer accepted so far.</summary>
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
            _handlers.Add(Task.Run(async () =>
            {
                using (connection)
                {
                    try
                    {
                        await handler(connection, _stop.Token);
                    }
                    catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException or IOException)
                    {
                    }
                }
            }));
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
            await Net.SendAllAsync(connection, buffer.AsMemory(0, read), cancellationToken);
        }
    }

    /// <summary>A handler that sends back exactly what it receives, and passes the client's FIN on.</summary>
    public static async Task MirrorAsync(Socket connection, CancellationToken cancellationToken)
    {
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var read = await connection.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
            if (read == 0)
            {
                connection.Shutdown(SocketShutdown.Send);
                return;
            }

            await Net.SendAllAsync(connection, buffer.AsMemory(0, read), cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        await _accepting;
        await Task.WhenAll(_handlers);
        _stop.Dispose();
    }
}

/// <summary>Socket helpers with deadlines.</summary>
internal static class Net
{
    public static async Task<Socket> ConnectAsync(IPEndPoint target, IPAddress? from = null)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (from is not null)
            {
                socket.Bind(new IPEndPoint(from, 0));
            }

            using var deadline = new CancellationTokenSource(TestSidecar.Deadline);
            await socket.ConnectAsync(target, deadline.Token);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public static async Task SendAllAsync(Socket socket, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        while (!data.IsEmpty)
        {
            var sent = await socket.SendAsync(data, SocketFlags.None, cancellationToken);
            data = data[sent..];
        }
    }

    /// <summary>Sends <paramref name="text"/> to a <see cref="TcpPeer"/> echo and reads its reply ("name:text").</summary>
    public static async Task<string> AskAsync(Socket socket, string text)
    {
        await SendAllAsync(socket, Encoding.ASCII.GetBytes(text));
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
            if (reply.EndsWith(":" + text, StringComparison.Ordinal))
            {
                return reply;
            }
        }
    }

    /// <summary>The backend name of an echo reply.</summary>
    public static string BackendOf(string reply) => reply[..reply.IndexOf(':', StringComparison.Ordinal)];

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

    /// <summary>Reads exactly <paramref name="count"/> bytes.</summary>
    public static async Task<byte[]> ReadExactlyAsync(Socket socket, int count, CancellationToken cancellationToken = default)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(TestSidecar.Deadline);
        var data = new byte[count];
        var total = 0;
        while (total < count)
        {
            var read = await socket.ReceiveAsync(data.AsMemory(total), SocketFlags.None, deadline.Token);
            if (read == 0)
            {
                throw new IOException($"the peer closed after {total} of {count} bytes");
            }

            total += read;
        }

        return data;
    }

    /// <summary>
    /// Waits until the peer ends the connection without sending anything: true for a reset, false for a clean close (FIN).
    /// </summary>
    public static async Task<bool> ClosedWithoutDataAsync(Socket socket)
    {
        try
        {
            Assert.Empty(await ReadToEndAsync(socket));
            return false;
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
            return true;
        }
    }
}

/// <summary>A TLS backend holding its own self-signed certificate; answers each connection with its name and records the SNI it saw.</summary>
internal sealed class TlsPeer : IAsyncDisposable
{
    private readonly X509Certificate2 _certificate;
    private readonly TcpPeer _tcp;

    public TlsPeer(string name, string subject, params string[] dnsNames)
    {
        Name = name;
        _certificate = SelfSigned(subject, dnsNames.Length == 0 ? [subject] : dnsNames);
        _tcp = new TcpPeer(name, ServeAsync);
    }

    public string Name { get; }

    public int Port => _tcp.Port;

    /// <summary>TCP connections accepted (handshake or not).</summary>
    public int Accepted => _tcp.Accepted;

    /// <summary>The server name of each completed handshake, as the backend's own TLS stack read it.</summary>
    public ConcurrentQueue<string> ServerNames { get; } = new();

    public object Endpoint => _tcp.Endpoint;

    public static X509Certificate2 SelfSigned(string subject, IEnumerable<string> dnsNames)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={subject}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var dnsName in dnsNames)
        {
            san.AddDnsName(dnsName);
        }

        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        using var created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        return X509CertificateLoader.LoadPkcs12(created.Export(X509ContentType.Pfx), null);
    }

    private async Task ServeAsync(Socket connection, CancellationToken cancellationToken)
    {
        await using var stream = new SslStream(new NetworkStream(connection, ownsSocket: false));
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(TestSidecar.Deadline);
        await stream.AuthenticateAsServerAsync(
            new SslServerAuthenticationOptions
            {
                ServerCertificate = _certificate,
                ApplicationProtocols = [new SslApplicationProtocol("h2"), new SslApplicationProtocol("mqtt"), SslApplicationProtocol.Http11],
            },
            deadline.Token);
        ServerNames.Enqueue(stream.TargetHostName);
        await stream.WriteAsync(Encoding.ASCII.GetBytes(Name + "\n"), deadline.Token);
        await stream.FlushAsync(deadline.Token);
        await stream.ShutdownAsync();
    }

    /// <summary>
    /// A real TLS client through <paramref name="target"/> with SNI <paramref name="serverName"/> (an IP address
    /// or "" sends none); returns the subject of the certificate the server presented and the first line it sent.
    /// </summary>
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
                // Self-signed test backends: record which certificate came back and accept it.
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                {
                    subject = certificate?.Subject;
                    return certificate is not null;
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

/// <summary>A UDP backend that answers each datagram with "name:" + the datagram.</summary>
internal sealed class UdpEcho : IAsyncDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _running;

    public UdpEcho(string name)
    {
        Name = name;
        _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _running = RunAsync();
    }

    public string Name { get; }

    public object Endpoint => new { address = "127.0.0.1", port = ((IPEndPoint)_socket.LocalEndPoint!).Port };

    private async Task RunAsync()
    {
        var buffer = new byte[2048];
        var prefix = Encoding.ASCII.GetBytes(Name + ":");
        try
        {
            while (true)
            {
                var got = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), _stop.Token);
                byte[] reply = [.. prefix, .. buffer.AsSpan(0, got.ReceivedBytes)];
                await _socket.SendToAsync(reply, SocketFlags.None, got.RemoteEndPoint, _stop.Token);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>
    /// Sends <paramref name="text"/> and waits for the reply to it, resending every 2 s (UDP may drop on a
    /// loaded machine) up to about 20 s. Returns who the reply came from and its text.
    /// </summary>
    public static async Task<(IPEndPoint From, string Text)> AskAsync(Socket client, IPEndPoint target, string text)
    {
        var buffer = new byte[2048];
        for (var attempt = 0; attempt < 10; attempt++)
        {
            await client.SendToAsync(Encoding.ASCII.GetBytes(text), SocketFlags.None, target);
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            try
            {
                while (true)
                {
                    var got = await client.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), wait.Token);
                    var reply = Encoding.ASCII.GetString(buffer, 0, got.ReceivedBytes);
                    // A late reply to an earlier resend is skipped.
                    if (reply.EndsWith(":" + text, StringComparison.Ordinal))
                    {
                        return ((IPEndPoint)got.RemoteEndPoint, reply);
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        throw new TimeoutException($"no UDP reply to '{text}'");
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _socket.Dispose();
        await _running;
        _stop.Dispose();
    }
}
