// Stage 7 of the data path: one endpoint pick per request, and the consistent-hash key.
using System.Net;
using BenchmarkDotNet.Attributes;
using Mesh.Discovery;
using Mesh.Sidecar.Configuration;
using Mesh.Sidecar.Endpoints;
using Mesh.Sidecar.LoadBalancing;
using Microsoft.AspNetCore.Http;

namespace Mesh.Benchmarks;

/// <summary>Every balancer over the same 8 equal-weight endpoints; plus the hash-key helpers.</summary>
[MemoryDiagnoser]
public class LoadBalancerBenchmarks
{
    private const string Key = "user-0123456789abcde"; // 20 chars

    private RoundRobinBalancer _roundRobin = null!;
    private LeastRequestsBalancer _leastRequests = null!;
    private PowerOfTwoChoicesBalancer _powerOfTwo = null!;
    private RandomBalancer _random = null!;
    private ConsistentHashBalancer _consistentHash = null!;
    private HashKeySelector _headerKey = null!;
    private HashKeySelector _addressKey = null!;
    private HttpContext _context = null!;
    private ulong _hash;

    [GlobalSetup]
    public void Setup()
    {
        var endpoints = new EndpointState[8];
        for (var i = 0; i < endpoints.Length; i++)
        {
            endpoints[i] = new EndpointState(new ServiceEndpoint("127.0.0.1", 9000 + i), "http");
        }

        // Some load so least-requests and power-of-two have something to compare.
        endpoints[1].Enter();
        endpoints[5].Enter();
        endpoints[5].Enter();

        _roundRobin = new RoundRobinBalancer(endpoints);
        _leastRequests = new LeastRequestsBalancer(endpoints);
        _powerOfTwo = new PowerOfTwoChoicesBalancer(endpoints);
        _random = new RandomBalancer(endpoints);
        _consistentHash = new ConsistentHashBalancer(endpoints);
        _hash = StableHash.Of(Key);

        _headerKey = new HashKeySelector(new HashKeyOptions { Source = HashSources.Header, Name = "x-user-id" });
        _addressKey = new HashKeySelector(new HashKeyOptions { Source = HashSources.ClientAddress });
        _context = new DefaultHttpContext();
        _context.Request.Headers["x-user-id"] = Key;
        _context.Connection.RemoteIpAddress = IPAddress.Parse("10.1.2.3");
    }

    [Benchmark]
    public string? RoundRobin() => _roundRobin.Pick(null)?.Authority;

    [Benchmark]
    public string? LeastRequests() => _leastRequests.Pick(null)?.Authority;

    [Benchmark]
    public string? PowerOfTwoChoices() => _powerOfTwo.Pick(null)?.Authority;

    [Benchmark]
    public string? Random() => _random.Pick(null)?.Authority;

    [Benchmark]
    public string? ConsistentHash() => _consistentHash.Pick(_hash)?.Authority;

    /// <summary>A hash policy with no key on the request falls back to weighted random.</summary>
    [Benchmark]
    public string? ConsistentHashNoKey() => _consistentHash.Pick(null)?.Authority;

    [Benchmark]
    public ulong StableHash20Chars() => StableHash.Of(Key);

    [Benchmark]
    public ulong? HashKeyHeader() => _headerKey.Compute(_context);

    [Benchmark]
    public ulong? HashKeyClientAddress() => _addressKey.Compute(_context);
}
