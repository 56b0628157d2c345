// "retries": {} means retries with every default: the configuration system drops empty objects (and lists), so put them back.
namespace Mesh.Sidecar.Configuration;

/// <summary>
/// The JSON configuration provider keeps an empty object only as a key with no value, which binds to
/// null; for the resilience keys an empty object means "on, with the defaults". This fills those in.
/// </summary>
internal static class ResilienceConfigDefaults
{
    public static MeshOptions Apply(IConfiguration root, MeshOptions options)
    {
        var services = new Dictionary<string, ServiceOptions>(options.Services.Count, StringComparer.Ordinal);
        var changed = false;
        foreach (var section in root.GetSection("services").GetChildren())
        {
            if (!options.Services.TryGetValue(section.Key, out var service))
            {
                continue;
            }

            var filled = service with
            {
                Retries = service.Retries ?? (Empty(section, "retries") ? new RetryOptions() : null),
                CircuitBreaker = service.CircuitBreaker ?? (Empty(section, "circuitBreaker") ? new CircuitBreakerOptions() : null),
                OutlierDetection = service.OutlierDetection ?? (Empty(section, "outlierDetection") ? new OutlierDetectionOptions() : null),
                HealthCheck = service.HealthCheck ?? (Empty(section, "healthCheck") ? new HealthCheckOptions() : null),
            };
            changed |= filled != service;
            services[section.Key] = filled;
        }

        var routes = new List<RouteOptions>(options.Routes.Count);
        var sections = root.GetSection("routes").GetChildren().ToDictionary(s => s.Key, StringComparer.Ordinal);
        for (var i = 0; i < options.Routes.Count; i++)
        {
            var route = options.Routes[i];
            if (sections.TryGetValue(i.ToString(System.Globalization.CultureInfo.InvariantCulture), out var section))
            {
                var filled = route with
                {
                    RateLimit = route.RateLimit ?? (Empty(section, "rateLimit") ? new RateLimitOptions() : null),
                    Fault = route.Fault ?? (Empty(section, "fault") ? new FaultOptions() : null),

                    // "split": [] is a split with no target, which validation names, not a missing split.
                    Split = route.Split ?? (Empty(section, "split") ? [] : null),
                };
                changed |= filled != route;
                route = filled;
            }

            routes.Add(route);
        }

        if (!changed)
        {
            return options;
        }

        foreach (var (name, service) in options.Services)
        {
            services.TryAdd(name, service);
        }

        return options with { Services = services, Routes = routes };
    }

    private static bool Empty(IConfigurationSection parent, string key)
    {
        foreach (var child in parent.GetChildren())
        {
            if (string.Equals(child.Key, key, StringComparison.OrdinalIgnoreCase))
            {
                return string.IsNullOrEmpty(child.Value) && !child.GetChildren().Any();
            }
        }

        return false;
    }
}
