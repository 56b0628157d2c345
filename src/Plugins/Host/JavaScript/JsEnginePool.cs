// Engines of one filter entry, reused across calls: an engine runs one call at a time, never two.
namespace Mesh.Plugins.JavaScript;

/// <summary>
/// A small lock-free pool. <see cref="Rent"/> takes an idle engine or makes one (a call never waits for
/// another to finish); <see cref="Return"/> keeps it for the next call unless the pool already holds
/// <see cref="Capacity"/>, in which case it is disposed. Renting and returning allocate nothing.
/// </summary>
internal sealed class JsEnginePool : IDisposable
{
    private readonly Func<JsEngine> _create;
    private readonly JsEngine?[] _idle;
    private JsEngine? _first;
    private int _created;
    private volatile bool _disposed;

    public JsEnginePool(Func<JsEngine> create, int capacity)
    {
        ArgumentNullException.ThrowIfNull(create);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _create = create;
        _idle = new JsEngine?[capacity - 1];
        Capacity = capacity;
    }

    /// <summary>Engines kept idle at most.</summary>
    public int Capacity { get; }

    /// <summary>Engines made so far (for the admin API and tests).</summary>
    public int Created => Volatile.Read(ref _created);

    /// <summary>Puts a first engine in the pool (made when the filter is built, so the first request does not pay for it).</summary>
    public void Warm(JsEngine engine)
    {
        Interlocked.Increment(ref _created);
        Return(engine);
    }

    public JsEngine Rent()
    {
        var engine = _first;
        if (engine is not null && Interlocked.CompareExchange(ref _first, null, engine) == engine)
        {
            return engine;
        }

        var idle = _idle;
        for (var i = 0; i < idle.Length; i++)
        {
            engine = idle[i];
            if (engine is not null && Interlocked.CompareExchange(ref idle[i], null, engine) == engine)
            {
                return engine;
            }
        }

        Interlocked.Increment(ref _created);
        return _create();
    }

    public void Return(JsEngine engine)
    {
        if (!_disposed)
        {
            if (_first is null && Interlocked.CompareExchange(ref _first, engine, null) is null)
            {
                Recheck(engine);
                return;
            }

            var idle = _idle;
            for (var i = 0; i < idle.Length; i++)
            {
                if (idle[i] is null && Interlocked.CompareExchange(ref idle[i], engine, null) is null)
                {
                    Recheck(engine);
                    return;
                }
            }
        }

        engine.Dispose();
    }

    public void Dispose()
    {
        _disposed = true;
        Interlocked.Exchange(ref _first, null)?.Dispose();
        for (var i = 0; i < _idle.Length; i++)
        {
            Interlocked.Exchange(ref _idle[i], null)?.Dispose();
        }
    }

    // A return that raced with Dispose: take the engine back out and dispose it.
    private void Recheck(JsEngine engine)
    {
        if (!_disposed)
        {
            return;
        }

        if (Interlocked.CompareExchange(ref _first, null, engine) == engine)
        {
            engine.Dispose();
            return;
        }

        for (var i = 0; i < _idle.Length; i++)
        {
            if (Interlocked.CompareExchange(ref _idle[i], null, engine) == engine)
            {
                engine.Dispose();
                return;
            }
        }
    }
}
