// The test agent's catalog: nodes, services, checks, the Raft-like index and the change signal blocking queries wait on.
namespace Mesh.Tests.Consul;

/// <summary>A registered service instance.</summary>
public sealed record TestServiceInstance
{
    public required string Id { get; init; }

    public required string Name { get; init; }

    public string Node { get; init; } = ConsulTestState.AgentNode;

    public string Address { get; init; } = "";

    public int Port { get; init; }

    public IReadOnlyList<string> Tags { get; init; } = [];

    public IReadOnlyDictionary<string, string> Meta { get; init; } = new Dictionary<string, string>();

    public int PassingWeight { get; init; } = 1;

    public int WarningWeight { get; init; } = 1;

    public bool EnableTagOverride { get; init; }

    public string Kind { get; init; } = "";

    public ulong CreateIndex { get; init; }

    public ulong ModifyIndex { get; init; }
}

/// <summary>A health check and how it is kept up to date.</summary>
public sealed record TestCheck
{
    public required string Id { get; init; }

    public required string Name { get; init; }

    public string Node { get; init; } = ConsulTestState.AgentNode;

    /// <summary>Empty for a node check.</summary>
    public string ServiceId { get; init; } = "";

    public string Status { get; init; } = "critical";

    public string Output { get; init; } = "";

    public string Notes { get; init; } = "";

    /// <summary><c>ttl</c>, <c>http</c>, <c>tcp</c>, <c>script</c> or <c>serf</c>.</summary>
    public string Type { get; init; } = "script";

    public TimeSpan? Ttl { get; init; }

    public DateTimeOffset TtlDeadline { get; init; }

    public string? Http { get; init; }

    public string? Tcp { get; init; }

    public TimeSpan Interval { get; init; }

    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan? DeregisterCriticalServiceAfter { get; init; }

    /// <summary>When the check last turned critical (null while not critical).</summary>
    public DateTimeOffset? CriticalSince { get; init; }
}

/// <summary>
/// The catalog of the test agent. Every change takes a new index, records it on the services it
/// touches, and wakes blocking queries. All members are thread-safe (one lock).
/// </summary>
public sealed class ConsulTestState
{
    public const string AgentNode = "mesh-test-agent";

    private readonly Lock _lock = new();
    private readonly Dictionary<string, (string Address, IReadOnlyDictionary<string, string> Meta)> _nodes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TestServiceInstance> _services = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TestCheck> _checks = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ulong> _serviceIndex = new(StringComparer.Ordinal);
    private TaskCompletionSource _changed = NewSignal();
    private ulong _index;

    public ConsulTestState(TimeProvider? time = null, ulong firstIndex = 1)
    {
        Time = time ?? TimeProvider.System;
        _index = firstIndex;
        _nodes[AgentNode] = ("127.0.0.1", new Dictionary<string, string>());
        _checks["serfHealth"] = new TestCheck { Id = "serfHealth", Name = "Serf Health Status", Status = "passing", Type = "serf", Output = "Agent alive and reachable" };
    }

    public TimeProvider Time { get; }

    /// <summary>The newest index (grows on every change unless reset).</summary>
    public ulong Index
    {
        get
        {
            lock (_lock)
            {
                return _index;
            }
        }
    }

    /// <summary>Completes on the next change.</summary>
    public Task Changed
    {
        get
        {
            lock (_lock)
            {
                return _changed.Task;
            }
        }
    }

    /// <summary>The index of the last change to <paramref name="service"/>; 1 for a name never seen.</summary>
    public ulong ServiceIndex(string service)
    {
        lock (_lock)
        {
            return _serviceIndex.TryGetValue(service, out var index) ? index : 1;
        }
    }

    public IReadOnlyList<TestServiceInstance> Services()
    {
        lock (_lock)
        {
            return [.. _services.Values];
        }
    }

    public TestServiceInstance? Service(string id)
    {
        lock (_lock)
        {
            return _services.GetValueOrDefault(id);
        }
    }

    public IReadOnlyList<TestCheck> Checks()
    {
        lock (_lock)
        {
            return [.. _checks.Values];
        }
    }

    public TestCheck? Check(string id)
    {
        lock (_lock)
        {
            return _checks.GetValueOrDefault(id);
        }
    }

    public string NodeAddress(string node)
    {
        lock (_lock)
        {
            return _nodes.TryGetValue(node, out var n) ? n.Address : "";
        }
    }

    public void AddNode(string name, string address)
    {
        lock (_lock)
        {
            _nodes[name] = (address, new Dictionary<string, string>());
            _checks[$"serfHealth@{name}"] = new TestCheck { Id = "serfHealth", Name = "Serf Health Status", Node = name, Status = "passing", Type = "serf" };
            Bump([]);
        }
    }

    /// <summary>Registers or replaces an instance and its checks; a check that existed keeps its status.</summary>
    public void Register(TestServiceInstance instance, IReadOnlyList<TestCheck> checks)
    {
        lock (_lock)
        {
            var existing = _services.GetValueOrDefault(instance.Id);
            var index = _index + 1;
            _services[instance.Id] = instance with { CreateIndex = existing?.CreateIndex ?? index, ModifyIndex = index };
            foreach (var check in checks)
            {
                var stored = check;
                if (_checks.TryGetValue(check.Id, out var previous) && previous.Type == check.Type)
                {
                    stored = check with { Status = previous.Status, Output = previous.Output, CriticalSince = previous.CriticalSince, TtlDeadline = previous.TtlDeadline };
                }
                else if (stored.Status == "critical")
                {
                    stored = stored with { CriticalSince = Time.GetUtcNow() };
                }

                _checks[check.Id] = stored;
            }

            Bump(existing is null || existing.Name == instance.Name ? [instance.Name] : [instance.Name, existing.Name]);
        }
    }

    public void AddCheck(TestCheck check)
    {
        lock (_lock)
        {
            _checks[check.Id] = check.Status == "critical" ? check with { CriticalSince = Time.GetUtcNow() } : check;
            Bump(ServiceNamesOf(check));
        }
    }

    /// <summary>Removes an instance and its checks; false when the ID is unknown.</summary>
    public bool Deregister(string serviceId)
    {
        lock (_lock)
        {
            if (!_services.Remove(serviceId, out var removed))
            {
                return false;
            }

            foreach (var id in _checks.Where(c => c.Value.ServiceId == serviceId).Select(c => c.Key).ToList())
            {
                _checks.Remove(id);
            }

            Bump([removed.Name]);
            return true;
        }
    }

    public bool RemoveCheck(string checkId)
    {
        lock (_lock)
        {
            if (!_checks.Remove(checkId, out var removed))
            {
                return false;
            }

            Bump(ServiceNamesOf(removed));
            return true;
        }
    }

    /// <summary>Sets a check's status (and, for TTL checks, restarts the TTL clock); false when unknown.</summary>
    public bool SetStatus(string checkId, string status, string? output = null)
    {
        lock (_lock)
        {
            if (!_checks.TryGetValue(checkId, out var check))
            {
                return false;
            }

            var now = Time.GetUtcNow();
            var updated = check with
            {
                Status = status,
                Output = output ?? check.Output,
                TtlDeadline = check.Ttl is { } ttl ? now + ttl : check.TtlDeadline,
                CriticalSince = status == "critical" ? check.CriticalSince ?? now : null,
            };
            _checks[checkId] = updated;
            // Consul only takes a new index when something a reader sees changed.
            if (updated.Status != check.Status || updated.Output != check.Output)
            {
                Bump(ServiceNamesOf(check));
            }

            return true;
        }
    }

    /// <summary>Expires TTL checks and reaps services critical longer than their DeregisterCriticalServiceAfter.</summary>
    public void Sweep()
    {
        lock (_lock)
        {
            var now = Time.GetUtcNow();
            foreach (var check in _checks.Values.ToList())
            {
                if (check.Ttl is not null && check.Status != "critical" && now >= check.TtlDeadline)
                {
                    SetStatus(check.Id, "critical", "TTL expired");
                }
            }

            foreach (var check in _checks.Values.ToList())
            {
                if (check.DeregisterCriticalServiceAfter is { } after && check.CriticalSince is { } since && now - since >= after && check.ServiceId.Length > 0)
                {
                    Deregister(check.ServiceId);
                }
            }
        }
    }

    /// <summary>Moves the index back (a rebuilt cluster, a restored snapshot): every service takes <paramref name="index"/>.</summary>
    public void ResetIndex(ulong index)
    {
        lock (_lock)
        {
            _index = index;
            foreach (var name in _serviceIndex.Keys.ToList())
            {
                _serviceIndex[name] = index;
            }

            Pulse();
        }
    }

    /// <summary>The checks that decide an instance's health: its node's and its own.</summary>
    public IReadOnlyList<TestCheck> ChecksOf(TestServiceInstance instance)
    {
        lock (_lock)
        {
            return [.. _checks.Values.Where(c => c.Node == instance.Node && (c.ServiceId.Length == 0 || c.ServiceId == instance.Id))];
        }
    }

    private List<string> ServiceNamesOf(TestCheck check)
    {
        if (check.ServiceId.Length > 0)
        {
            return _services.TryGetValue(check.ServiceId, out var s) ? [s.Name] : [];
        }

        // A node check touches every service on the node.
        return [.. _services.Values.Where(s => s.Node == check.Node).Select(s => s.Name).Distinct()];
    }

    private void Bump(IEnumerable<string> services)
    {
        _index++;
        foreach (var name in services)
        {
            _serviceIndex[name] = _index;
        }

        Pulse();
    }

    private void Pulse() => Interlocked.Exchange(ref _changed, NewSignal()).TrySetResult();

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
