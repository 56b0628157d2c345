// Collects a sidecar's log entries with their event ids and structured values, for tests that check what was logged.
using System.Collections.Concurrent;

namespace Mesh.FunctionalTests.Infrastructure;

/// <summary>One log entry: category, level, event id, the rendered message and its named values.</summary>
public sealed record LogEntry(string Category, LogLevel Level, int EventId, string Message, IReadOnlyDictionary<string, object?> Values);

/// <summary>An <see cref="ILoggerProvider"/> that keeps every entry at Debug or above.</summary>
public sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<LogEntry> _entries = new();

    public IReadOnlyList<LogEntry> Entries => [.. _entries];

    /// <summary>Entries with event id <paramref name="eventId"/>.</summary>
    public IReadOnlyList<LogEntry> WithEvent(int eventId) => [.. _entries.Where(e => e.EventId == eventId)];

    /// <summary>Adds this provider to a logging builder (what SidecarLaunch.ConfigureLogging takes).</summary>
    public void AddTo(ILoggingBuilder logging)
    {
        logging.AddProvider(this);
        logging.AddFilter<LogCapture>("Mesh", LogLevel.Debug);
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = new Dictionary<string, object?>(StringComparer.Ordinal);
            if (state is IReadOnlyList<KeyValuePair<string, object?>> pairs)
            {
                foreach (var (key, value) in pairs)
                {
                    values[key] = value;
                }
            }

            owner._entries.Enqueue(new LogEntry(category, logLevel, eventId.Id, formatter(state, exception), values));
        }
    }
}
