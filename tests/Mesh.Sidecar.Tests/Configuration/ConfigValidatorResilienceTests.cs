// The resilience keys: every bad value is an error at its JSON path; empty objects mean the defaults.
using System.Text.Json.Nodes;
using static Mesh.Sidecar.Tests.Configuration.TestConfigs;

namespace Mesh.Sidecar.Tests.Configuration;

public sealed class ConfigValidatorResilienceTests
{
    private static JsonObject Api(JsonObject config) => config["services"]!["api"]!.AsObject();

    private static JsonObject Route(JsonObject config) => config["routes"]![0]!.AsObject();

    private static void AssertError(Action<JsonObject> change, string path, string fragment)
    {
        var result = With(change);
        Assert.False(result.IsValid);
        Assert.Contains(result.Errors, e => e.Path == path && e.Message.Contains(fragment, StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_EveryPolicyWithValues_Valid()
    {
        var result = With(c =>
        {
            Api(c)["retries"] = JsonNode.Parse("""{ "attempts": 2, "on": ["connect-failure", "reset", "502", "503", "504", "5xx", "gateway-error"], "grpcStatuses": ["unavailable", "resource-exhausted"], "perTryTimeoutMs": 100, "backoffBaseMs": 25, "backoffMaxMs": 250, "budgetPercent": 20, "nonIdempotent": false, "maxBodyBytes": 65536 }""");
            Api(c)["circuitBreaker"] = JsonNode.Parse("""{ "maxConcurrentRequests": 100, "maxPendingRequests": 10, "failureRatio": 0.5, "minimumThroughput": 20, "samplingMs": 10000, "breakMs": 5000 }""");
            Api(c)["outlierDetection"] = JsonNode.Parse("""{ "consecutiveFailures": 5, "baseEjectionMs": 30000, "maxEjectionPercent": 50 }""");
            Api(c)["healthCheck"] = JsonNode.Parse("""{ "type": "http", "path": "/healthz", "intervalMs": 5000, "timeoutMs": 1000, "healthyThreshold": 2, "unhealthyThreshold": 3 }""");
            Route(c)["timeoutMs"] = 1000;
            Route(c)["rateLimit"] = JsonNode.Parse("""{ "key": "header:x-user", "rate": 100, "burst": 100, "periodMs": 1000 }""");
            Route(c)["mirror"] = JsonNode.Parse("""{ "service": "api", "percent": 12.5 }""");
            Route(c)["fault"] = JsonNode.Parse("""{ "delayMs": 10, "delayPercent": 1, "abortStatus": 503, "abortPercent": 0.1 }""");
        });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        var options = result.Options!;
        Assert.Equal(["unavailable", "resource-exhausted"], options.Services["api"].Retries!.GrpcStatuses!);
        Assert.Equal(12.5, options.Routes[0].Mirror!.Percent);
    }

    [Fact]
    public void Load_EmptyPolicyObjects_MeanTheDefaults()
    {
        var result = With(c =>
        {
            Api(c)["retries"] = new JsonObject();
            Api(c)["circuitBreaker"] = new JsonObject();
            Api(c)["outlierDetection"] = new JsonObject();
            Api(c)["healthCheck"] = new JsonObject();
            Route(c)["rateLimit"] = new JsonObject();
            Route(c)["fault"] = new JsonObject();
        });

        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        var api = result.Options!.Services["api"];
        Assert.Equal(2, api.Retries!.Attempts);
        Assert.Equal(65_536, api.Retries.MaxBodyBytes);
        Assert.Equal(0.5, api.CircuitBreaker!.FailureRatio);
        Assert.Equal(5, api.OutlierDetection!.ConsecutiveFailures);
        Assert.Equal("/healthz", api.HealthCheck!.Path);
        Assert.Equal(100, result.Options.Routes[0].RateLimit!.Rate);
        Assert.Equal(503, result.Options.Routes[0].Fault!.AbortStatus);
    }

    [Theory]
    [InlineData("""{ "attempts": 11 }""", "services.api.retries.attempts", "out of range")]
    [InlineData("""{ "on": ["502", "teapot"] }""", "services.api.retries.on[1]", "'teapot' is not a retry condition")]
    [InlineData("""{ "on": ["302"] }""", "services.api.retries.on[0]", "not a retry condition")]
    [InlineData("""{ "grpcStatuses": ["UNAVAILABLE"] }""", "services.api.retries.grpcStatuses[0]", "not a gRPC status")]
    [InlineData("""{ "perTryTimeoutMs": -1 }""", "services.api.retries.perTryTimeoutMs", "0 or more")]
    [InlineData("""{ "backoffBaseMs": 100, "backoffMaxMs": 50 }""", "services.api.retries.backoffMaxMs", "below backoffBaseMs")]
    [InlineData("""{ "budgetPercent": 101 }""", "services.api.retries.budgetPercent", "out of range")]
    [InlineData("""{ "maxBodyBytes": -5 }""", "services.api.retries.maxBodyBytes", "out of range")]
    public void Validate_BadRetries_ReportPath(string retries, string path, string fragment) =>
        AssertError(c => Api(c)["retries"] = JsonNode.Parse(retries), path, fragment);

    [Theory]
    [InlineData("""{ "maxConcurrentRequests": -1 }""", "services.api.circuitBreaker.maxConcurrentRequests", "0 or more")]
    [InlineData("""{ "maxPendingRequests": 5 }""", "services.api.circuitBreaker.maxPendingRequests", "set maxConcurrentRequests")]
    [InlineData("""{ "failureRatio": 1.5 }""", "services.api.circuitBreaker.failureRatio", "not a ratio")]
    [InlineData("""{ "minimumThroughput": 1 }""", "services.api.circuitBreaker.minimumThroughput", "2 or more")]
    [InlineData("""{ "samplingMs": 500 }""", "services.api.circuitBreaker.samplingMs", "above 500")]
    [InlineData("""{ "breakMs": 100 }""", "services.api.circuitBreaker.breakMs", "above 500")]
    public void Validate_BadCircuitBreaker_ReportPath(string breaker, string path, string fragment) =>
        AssertError(c => Api(c)["circuitBreaker"] = JsonNode.Parse(breaker), path, fragment);

    [Theory]
    [InlineData("""{ "consecutiveFailures": 0 }""", "services.api.outlierDetection.consecutiveFailures", "above 0")]
    [InlineData("""{ "baseEjectionMs": 0 }""", "services.api.outlierDetection.baseEjectionMs", "above 0")]
    [InlineData("""{ "maxEjectionPercent": 150 }""", "services.api.outlierDetection.maxEjectionPercent", "out of range")]
    public void Validate_BadOutlierDetection_ReportPath(string outlier, string path, string fragment) =>
        AssertError(c => Api(c)["outlierDetection"] = JsonNode.Parse(outlier), path, fragment);

    [Theory]
    [InlineData("""{ "type": "grpc" }""", "services.api.healthCheck.type", "'grpc' is not one of")]
    [InlineData("""{ "path": "healthz" }""", "services.api.healthCheck.path", "must start with '/'")]
    [InlineData("""{ "intervalMs": 0 }""", "services.api.healthCheck.intervalMs", "above 0")]
    [InlineData("""{ "timeoutMs": -1 }""", "services.api.healthCheck.timeoutMs", "above 0")]
    [InlineData("""{ "healthyThreshold": 0 }""", "services.api.healthCheck.healthyThreshold", "above 0")]
    [InlineData("""{ "unhealthyThreshold": 0 }""", "services.api.healthCheck.unhealthyThreshold", "above 0")]
    public void Validate_BadHealthCheck_ReportPath(string check, string path, string fragment) =>
        AssertError(c => Api(c)["healthCheck"] = JsonNode.Parse(check), path, fragment);

    [Theory]
    [InlineData("timeoutMs", "-1", "routes[0].timeoutMs", "0 or more")]
    [InlineData("rateLimit", """{ "key": "cookie:x" }""", "routes[0].rateLimit.key", "not a rate-limit key")]
    [InlineData("rateLimit", """{ "key": "header:bad name" }""", "routes[0].rateLimit.key", "not a valid header name")]
    [InlineData("rateLimit", """{ "rate": 0 }""", "routes[0].rateLimit.rate", "above 0")]
    [InlineData("rateLimit", """{ "burst": 0 }""", "routes[0].rateLimit.burst", "above 0")]
    [InlineData("rateLimit", """{ "periodMs": 0 }""", "routes[0].rateLimit.periodMs", "above 0")]
    [InlineData("mirror", """{ "service": "nope" }""", "routes[0].mirror.service", "no service named 'nope'")]
    [InlineData("mirror", """{ "service": "api", "percent": 101 }""", "routes[0].mirror.percent", "not a percentage")]
    [InlineData("fault", """{ "delayPercent": 10 }""", "routes[0].fault.delayMs", "give a delay above 0")]
    [InlineData("fault", """{ "abortStatus": 99 }""", "routes[0].fault.abortStatus", "out of range")]
    [InlineData("fault", """{ "abortPercent": -1 }""", "routes[0].fault.abortPercent", "not a percentage")]
    public void Validate_BadRoutePolicy_ReportPath(string key, string value, string path, string fragment) =>
        AssertError(c => Route(c)[key] = JsonNode.Parse(value), path, fragment);

    [Fact]
    public void Validate_Split_InsteadOfService()
    {
        var valid = With(c =>
        {
            Route(c).Remove("service");
            Route(c)["split"] = JsonNode.Parse("""[ { "service": "api", "weight": 90 }, { "service": "api", "subset": "v2", "weight": 10 } ]""");
        });
        Assert.True(valid.IsValid, string.Join("\n", valid.Errors));

        AssertError(c => Route(c)["split"] = JsonNode.Parse("""[ { "service": "api", "weight": 1 } ]"""), "routes[0].split", "not both");
        AssertError(
            c =>
            {
                Route(c).Remove("service");
                Route(c)["split"] = JsonNode.Parse("""[ { "service": "api", "weight": 0 }, { "service": "other", "subset": "", "weight": 20000 } ]""");
            },
            "routes[0].split[1].service",
            "no service named 'other'");
        var result = With(c =>
        {
            Route(c).Remove("service");
            Route(c)["split"] = JsonNode.Parse("""[ { "service": "api", "weight": 0 }, { "service": "api", "subset": "", "weight": -1 } ]""");
        });
        Assert.Contains(result.Errors, e => e.Path == "routes[0].split[1].subset");
        Assert.Contains(result.Errors, e => e.Path == "routes[0].split[1].weight");
        Assert.Contains(result.Errors, e => e.Path == "routes[0].split" && e.Message.Contains("add up to 0", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_HealthCheckOnAProviderService_ReportsIt()
    {
        var result = With(c =>
        {
            Api(c)["discovery"] = "consul";
            Api(c)["healthCheck"] = new JsonObject { ["type"] = "tcp" };
        });

        Assert.Contains(result.Errors, e => e.Path == "services.api.healthCheck" && e.Message.Contains("static services", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_WrongTypes_ReportPath()
    {
        var result = With(c => Api(c)["retries"] = JsonNode.Parse("""{ "attempts": "many", "nonIdempotent": "yes" }"""));

        Assert.Contains(result.Errors, e => e.Path == "services.api.retries.attempts");
        Assert.Contains(result.Errors, e => e.Path == "services.api.retries.nonIdempotent");
        var unknown = With(c => Api(c)["retries"] = JsonNode.Parse("""{ "retryOn": ["502"] }"""));
        Assert.Contains(unknown.Errors, e => e.Path == "services.api.retries.retryOn" && e.Message.Contains("unknown key", StringComparison.Ordinal));
    }
}
